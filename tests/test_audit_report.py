"""The outcomes-audit report: HTML and PDF from a result dict.

tests/audit_fixture.json is a hand-made result rebuilt from report B (ABN 2011 abstract
136: 11 patients, alemtuzumab after natalizumab), with our optional keys filled in.
"""

from __future__ import annotations

import contextlib
import copy
import html
import json
import re
import zlib
from pathlib import Path

import pytest

from dmtwatch.outcomes import plotting
from dmtwatch.outcomes.report import fmt_ci, fmt_est, fmt_p, fmt_sig, render_html, render_pdf
from dmtwatch.outcomes.result import Audit
from dmtwatch.outcomes.sections.timeline import MAX_SWIMMER_ROWS

FIXTURE = Path(__file__).with_name("audit_fixture.json")


@pytest.fixture(scope="module")
def result() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def report(result: dict) -> str:
    return render_html(result)


@pytest.fixture
def quick_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Draw the figures but skip writing SVG (most of the time), for tests about layout
    of the data rather than the figures themselves."""
    monkeypatch.setattr(plotting, "to_svg", lambda fig, name, title: f'<svg id="{name}"></svg>')


def _text(page: str) -> str:
    """The visible text of the report, tags dropped and entities decoded, spaces collapsed."""
    body = re.sub(r"<svg\b.*?</svg>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def test_fixture_holds_report_b(result: dict) -> None:
    cohort, rel = result["cohort"], result["relapses"]
    assert cohort["n_patients"] == 11 == len(cohort["patients"])
    assert cohort["switch_reasons"] == {"allergy": 3, "inefficacy": 8}
    assert rel["pre_relapses"] == 28 and rel["post_relapses"] == 1
    assert result["labs"]["lymphopenia"]["n"] == 11 and result["labs"]["leucopenia"]["n"] == 4
    assert result["mri"]["pre"]["new_t2_n"] == 8 and result["mri"]["pre"]["gd_n"] == 4


def test_html_carries_the_key_numbers(report: str) -> None:
    text = _text(report)
    for number in ("2.55", "1.69", "3.68", "0.09", "0.0023", "0.51", "0.036", "10.99"):
        assert number in text, number
    assert "11 patients started alemtuzumab after natalizumab (8 inefficacy, 3 allergy)" in text
    assert "fell from 2.55 (95% CI 1.69–3.68) in the year before to 0.09 (0.0023–0.51)" in text
    assert "All 11 had lymphopenia" in text
    assert "4 of 11 had leucopenia" in text
    assert "none of 11 had neutropenia or thrombocytopenia" in text
    assert "8/11 (73%)" in text and "4/11 (36%)" in text  # MRI before day 0
    assert "10/11 (91%)" in text  # NEDA-3 at one year
    assert "not yet evaluable" in text  # year 2: nobody followed for two years yet
    assert "CNS-RING" in text and "P07" in text


def test_sections_in_order(report: str) -> None:
    ids = re.findall(r'<section id="([a-z]+)"', report)
    assert ids == [
        "results",
        "cohort",
        "relapses",
        "labs",
        "thyroid",
        "infections",
        "mri",
        "neda",
        "cns",
        "timelines",
        "completeness",
        "methods",
        "appendix",
    ]


def test_every_methods_term_is_rendered(result: dict, report: str) -> None:
    text = _text(report)
    assert result["methods"]
    for item in result["methods"]:
        assert item["term"] in text
        assert item["definition"] in text


def test_five_inline_figures_and_nothing_external(report: str) -> None:
    assert report.count("<svg") == 5
    assert "http://" not in report and "https://" not in report
    assert "<script" not in report.lower()
    assert "<link" not in report.lower()
    assert re.search(r"\bsrc=", report) is None
    assert re.findall(r"url\((?!#)", report) == []  # only in-document references
    assert "@import" not in report


def test_figure_ids_do_not_collide(report: str) -> None:
    ids = re.findall(r'\bid="([^"]+)"', report)
    assert len(ids) == len(set(ids))
    for ref in set(re.findall(r'(?:href="#|url\(#)([^")]+)', report)):
        assert ref in ids, ref


def _with_patient_id(result: dict, old: str, new: str) -> dict:
    """The result with one patient id replaced everywhere it occurs."""
    return json.loads(json.dumps(result).replace(json.dumps(old), json.dumps(new)))


def test_data_is_escaped(result: dict) -> None:
    evil = _with_patient_id(result, "P07", "<b>x</b>")
    evil["title"] = "Audit <script>alert(1)</script>"
    evil["methods"].append({"term": "A & B <i>", "definition": "x < y > z"})
    page = render_html(evil)
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page  # tables, and the swimmer plot's y labels
    assert "<script>" not in page and "<i>" not in page
    assert "A &amp; B &lt;i&gt;" in page


def test_mathtext_in_data_is_plain_text(result: dict) -> None:
    odd = _with_patient_id(result, "P03", "$x_1^2$")
    audit = Audit.from_dict(odd)
    svg = audit.timeline.plot(audit.cohort.patients)
    assert svg is not None and "$x_1^2$" in svg


def _pdf_objects(data: bytes) -> bytes:
    """The PDF with every Flate stream inflated (pages may sit in object streams)."""
    out = [data]
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        with contextlib.suppress(zlib.error):  # not every stream is Flate
            out.append(zlib.decompressobj().decompress(m.group(1)))
    return b"\n".join(out)


@pytest.mark.filterwarnings("ignore:HarfBuzz-Subset:DeprecationWarning")
def test_pdf_is_valid_and_has_several_pages(result: dict, tmp_path: Path) -> None:
    path = tmp_path / "audit.pdf"
    render_pdf(result, path)
    data = path.read_bytes()
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    objects = _pdf_objects(data)
    pages = re.findall(rb"/Type\s*/Page(?![a-zA-Z])", objects)
    counts = [int(n) for n in re.findall(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)", objects)]
    counts += [int(n) for n in re.findall(rb"/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", objects)]
    assert len(pages) > 1
    assert max(counts) == len(pages)


def test_empty_cohort_says_so() -> None:
    empty = {
        "as_of": "2011-01-31",
        "title": "Alemtuzumab outcomes audit",
        "cohort": {"n_patients": 0, "switch_reasons": {}, "patients": []},
        "relapses": {},
        "labs": {},
        "timeline": [],
        "methods": [{"term": "Day 0", "definition": "The first alemtuzumab infusion."}],
    }
    page = render_html(empty)
    text = _text(page)
    assert "No patients met the audit criteria as of 2011-01-31" in text
    assert "Day 0" in text
    assert "<svg" not in page
    assert "Alemtuzumab outcomes audit" in text


def test_bare_dict_renders() -> None:
    assert "No patients" in render_html({})


def test_contract_keys_alone_render(quick_figures: None) -> None:
    """Only the keys interchange section 5 fixes: every optional part is absent."""
    contract = {
        "cohort": {"n_patients": 11, "switch_reasons": {"allergy": 3, "inefficacy": 8}},
        "relapses": {
            "pre_window_days": 365,
            "post_window_days": 365,
            "pre_relapses": 28,
            "pre_person_years": 10.99,
            "arr_pre": 2.55,
            "arr_pre_ci": [1.69, 3.68],
            "post_relapses": 1,
            "post_person_years": 10.99,
            "arr_post": 0.09,
            "arr_post_ci": [0.002, 0.51],
            "rate_ratio": 0.036,
            "rate_ratio_ci": [0.001, 0.21],
        },
        "labs": {
            "lymphopenia": {
                "n": 1,
                "episodes": [
                    {
                        "patient_id": "P01",
                        "onset_day": 30,
                        "nadir": 0.21,
                        "grade": 3,
                        "normal_day": None,
                    }
                ],
            }
        },
        "thyroid": {"tpo_positive_n": 0, "hypothyroid_n": 0, "hyperthyroid_n": 0, "events": []},
        "infections": {"any_n": 0, "serious_n": 0},
        "mri": {
            "pre": {"scanned_n": 11, "new_t2_n": 8, "gd_n": 4},
            "post": {"scanned_n": 11, "new_t2_n": 0, "gd_n": 0},
        },
    }
    page = render_html(contract)
    text = _text(page)
    assert page.count("<svg") == 1  # relapse rates only: the others need our keys
    assert "2.55 (95% CI 1.69–3.68)" in text
    assert "No patient developed" in text
    assert "No definitions supplied" in text


@pytest.mark.parametrize(
    "path",
    [
        ("mri", "post"),
        ("mri",),
        ("thyroid", "events"),
        ("thyroid", "cumulative_incidence"),
        ("relapses", "km"),
        ("relapses", "negative_binomial"),
        ("labs", "trajectory"),
        ("labs", "grade_bands"),
        ("neda",),
        ("cns",),
        ("timeline",),
        ("cohort", "patients"),
        ("methods",),
        ("completeness",),
        ("adverse_events",),
    ],
)
def test_optional_parts_may_be_absent(
    result: dict, path: tuple[str, ...], quick_figures: None
) -> None:
    trimmed = copy.deepcopy(result)
    parent = trimmed
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    page = render_html(trimmed)
    assert "2.55" in page


def test_empty_lists_and_nulls(result: dict, quick_figures: None) -> None:
    thin = copy.deepcopy(result)
    thin["thyroid"]["events"] = []
    thin["thyroid"]["cumulative_incidence"] = {"time_days": [], "incidence": []}
    thin["relapses"]["negative_binomial"] = None
    thin["relapses"]["km"] = {}
    thin["cns"]["cases"] = []
    thin["labs"]["trajectory"]["lymphocytes"] = []
    thin["mri"]["post"] = {}
    page = render_html(thin)
    assert page.count("<svg") == 2  # relapse rates and the swimmer plot
    assert "No cases flagged" in _text(page)


def test_figures_are_deterministic(result: dict, report: str) -> None:
    relapses = Audit.from_dict(result).relapses
    svg = relapses.plot()
    assert svg is not None and svg == relapses.plot()
    assert svg.startswith("<svg") and "<metadata" not in svg and "xmlns" not in svg
    assert render_html(result) == report  # every figure, the second time round


def test_swimmer_keeps_the_sixty_busiest(result: dict, quick_figures: None) -> None:
    big = copy.deepcopy(result)
    patients, timeline = [], []
    for i in range(100):
        pid = f"S{i:03d}"
        patients.append({"patient_id": pid, "follow_up_days": 100 + i})
        timeline += [{"patient_id": pid, "day": d, "kind": "infusion"} for d in range(i % 7)]
    big["cohort"]["patients"] = patients
    big["cohort"]["n_patients"] = 100
    big["timeline"] = timeline
    audit = Audit.from_dict(big)
    rows, total = audit.timeline.rows(audit.cohort.patients)
    assert total == 100 and len(rows) == MAX_SWIMMER_ROWS
    assert min(len(r["events"]) for r in rows) >= 2  # the 60 busiest: at least 2 events each
    follow = [r["follow_up_days"] for r in rows]
    assert follow == sorted(follow, reverse=True)
    page = render_html(big)
    assert "Showing the 60 of 100 patients with the most recorded events" in _text(page)


def test_number_formats() -> None:
    assert fmt_est(0.035714) == "0.036"
    assert fmt_est(3.68141) == "3.68"
    assert fmt_est(0.00229) == "0.0023"
    assert fmt_sig(0.0999, 2) == "0.10"
    assert fmt_ci([1.69259, 3.68141]) == "1.69–3.68"
    assert fmt_ci(None) == ""
    assert fmt_p(0.000977) == "p < 0.001"
    assert fmt_p(0.049) == "p = 0.049"
    assert fmt_p(0.5) == "p = 0.50"


def test_appendix_can_be_capped(result: dict, quick_figures: None) -> None:
    text = _text(render_html(result, appendix_rows=3))
    assert "Patients (11)" in text
    assert "The first 3 of 11 rows; the HTML report and the audit JSON carry them all." in text
    assert "P01" in text and "P10 2010-01-11" not in text


def test_pre_window_on_previous_therapy(result: dict, quick_figures: None) -> None:
    therapy = copy.deepcopy(result)
    therapy["relapses"]["pre_window_days"] = "therapy"
    text = _text(render_html(therapy))
    assert "fell from 2.55 (95% CI 1.69–3.68) on the previous therapy to 0.09" in text
    assert "On previous therapy" in text


# Sparse real data: the report says what is missing, in words --------------------------


@pytest.fixture(scope="module")
def sparse_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The report of a clinic with no relapses before day 0, no EDSS, no adverse events."""
    import datetime as dt

    from dmtwatch.io import read_clinic
    from dmtwatch.outcomes.run import run_audit
    from tests.test_audit import sparse_clinic

    dataset, _ = read_clinic(sparse_clinic(tmp_path_factory.mktemp("sparse")))
    return _text(render_html(run_audit(dataset, dt.date(2014, 1, 1))))


def test_sparse_report_says_the_rate_ratio_is_not_estimable(sparse_text: str) -> None:
    assert (
        "Rate ratio, after / before (95% CI) not estimable: no relapses before day 0,"
        " so the ratio is unbounded; exact 95% CI from 0.41, no upper limit"
    ) in sparse_text
    assert "Negative binomial rate ratio not estimable: no relapses before day 0" in sparse_text
    assert "(rate ratio not estimable: no relapses before day 0" in sparse_text  # in brief
    assert not re.search(r"\d[eE][+-]?\d", sparse_text)  # no 4.9e9, no 4.9e+09


def test_sparse_report_says_neda_is_not_evaluable(sparse_text: str) -> None:
    assert "NEDA-3 at one year is not evaluable: no EDSS recorded." in sparse_text
    assert "Year 1 0 not evaluable: no EDSS recorded 15 (15 without an EDSS" in sparse_text
    assert "of 15 (" not in sparse_text.split("No evidence of disease activity (NEDA-3)")[1][:200]


def test_sparse_report_says_infections_were_not_recorded(sparse_text: str) -> None:
    assert "Infections and other adverse events were not recorded in these data." in sparse_text
    assert "Not recorded: these data hold no adverse events at all" in sparse_text
    assert "had an infection" not in sparse_text


def test_rate_ratio_renders_zero_after_and_none_at_all(result: dict, quick_figures: None) -> None:
    none_after = copy.deepcopy(result)
    none_after["relapses"] |= {"rate_ratio": 0.0, "rate_ratio_ci": [0.0, 0.13]}
    assert "Rate ratio, after / before (95% CI) 0 (0–0.13)" in _text(render_html(none_after))
    none_at_all = copy.deepcopy(result)
    none_at_all["relapses"] |= {
        "rate_ratio": None,
        "rate_ratio_ci": None,
        "rate_ratio_estimable": False,
        "rate_ratio_note": "no relapses before or after day 0",
    }
    text = _text(render_html(none_at_all))
    assert "(95% CI) not estimable: no relapses before or after day 0" in text


# Typed sections ------------------------------------------------------------------------


def test_json_round_trips_through_the_typed_audit(result: dict) -> None:
    """`Audit.from_dict(json).to_dict()` gives the JSON back: the sections' fields are
    its keys (a hand-made result's own keys too), none added, none lost."""
    again = Audit.from_dict(result).to_dict()
    assert again == result


def test_one_window_label() -> None:
    from dmtwatch.outcomes.format import window_label

    assert window_label(365, "pre") == "Year before day 0"
    assert window_label(365, "pre", phrase=True) == "in the year before"
    assert window_label(730, "post") == "2 years after day 0"
    assert window_label(180, "post", phrase=True) == "in the 180 days after"
    assert window_label("therapy", "pre") == "On previous therapy"
    # day 0 once read "0 years before day 0" in the tables and "Before day 0" in the figure
    assert window_label(0, "pre") == window_label(None, "pre") == "Before day 0"
    assert window_label(0, "pre", phrase=True) == "before day 0"


def test_the_typed_audit_renders_itself(result: dict, quick_figures: None) -> None:
    audit = Audit.from_dict(result)
    assert audit.to_html() == render_html(result)
    assert set(audit.summary) >= {"cohort", "relapses", "thyroid"}
    assert audit.summary["relapses"].loc["pre", "relapses"] == 28
