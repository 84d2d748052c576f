"""The outcomes audit: report B's cohort rebuilt from its table must give its figures;
ARR limits against published exact Poisson limits; window edges; person-time cut at the
end of follow-up; a missing scan is missing, not inactive."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dmtwatch.io import read_clinic
from dmtwatch.outcomes import stats
from dmtwatch.outcomes.context import AuditOptions
from dmtwatch.outcomes.run import run_audit
from dmtwatch.outcomes.sections.relapses import rate_ratio
from tests.clinic import alemtuzumab_course, day, lab, write_clinic

AS_OF = dt.date(2011, 1, 31)
YEAR = 365 / 365.25  # one 365-day window in person-years
PIDS = [f"P{i:02d}" for i in range(1, 12)]
PRE_RELAPSES = dict(zip(PIDS, [3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2], strict=True))  # 28


def _day0(i: int) -> dt.date:
    return dt.date(2009, 7, 6) + dt.timedelta(days=14 * i)  # July to November 2009


def report_b_cohort(folder: Path) -> Path:
    """Report B (ABN 2011, abstract 136) as records: 11 patients switched from natalizumab
    (3 allergy, 8 failure), lymphopenia in all at one month, leucopenia without
    neutropenia in 4 normal by 5 months, one TPO conversion at 3 months then
    hypothyroidism at 9 months, 28 relapses in the year before and 1 after, 8 active
    scans before (4 enhancing), none after, no serious infection."""
    treatments, labs, relapses, mri, aes = [], [], [], [], []
    for i, pid in enumerate(PIDS):
        d0 = _day0(i)
        treatments.append(
            {
                "patient_id": pid,
                "drug": "natalizumab",
                "start_date": dt.date(2007, 6, 1),
                "end_date": day(d0, -60),
                "stop_reason": "allergy" if i < 3 else "inefficacy",
            }
        )
        treatments.append(alemtuzumab_course(pid, d0))
        for k in range(PRE_RELAPSES[pid]):
            relapses.append({"patient_id": pid, "onset_date": day(d0, -330 + 100 * k)})
        mri.append(
            {
                "patient_id": pid,
                "date": day(d0, -30),
                "new_t2": 3 if i < 8 else 0,
                "gd_enhancing": 2 if i < 4 else 0,
                "ring_enhancing": 0,
            }
        )
        mri.append({"patient_id": pid, "date": day(d0, 365), "new_t2": 0, "gd_enhancing": 0})
        for d in [-10, *range(30, 420, 30)]:
            lymph = 1.8 if d < 0 else min(0.3 + 0.002 * d, 0.95)
            leuko = 6.0 if d < 0 or i >= 4 else (3.2 if d <= 60 else 3.8 if d <= 90 else 4.5)
            labs += [
                lab(pid, day(d0, d), "lymphocytes", lymph, "10*9/L"),
                lab(pid, day(d0, d), "leukocytes", leuko, "10*9/L"),
                lab(pid, day(d0, d), "neutrophils", 3.0, "10*9/L"),
                lab(pid, day(d0, d), "platelets", 250, "10*9/L"),
            ]
        for d in (-10, 91, 182, 273, 364):
            hypo = pid == "P09" and d >= 273
            labs.append(lab(pid, day(d0, d), "tsh", 8.5 if hypo else 1.9, "mIU/L"))
            labs.append(lab(pid, day(d0, d), "free_t4", 11 if hypo else 15, "pmol/L"))
            positive = pid == "P09" and d >= 91
            labs.append(lab(pid, day(d0, d), "tpo_ab", 120 if positive else 8, "IU/mL"))
    aes.append(
        {
            "patient_id": "P05",
            "onset_date": day(_day0(4), 100),
            "term": "Urinary tract infection",
            "category": "infection",
        }
    )
    aes.append(
        {
            "patient_id": "P07",
            "onset_date": day(_day0(6), 50),
            "term": "Nasopharyngitis",
            "category": "infection",
        }
    )
    relapses.append({"patient_id": "P05", "onset_date": day(_day0(4), 200)})
    return write_clinic(
        folder, treatments=treatments, labs=labs, relapses=relapses, mri=mri, adverse_events=aes
    )


@pytest.fixture(scope="module")
def report_b(tmp_path_factory) -> dict:
    folder = report_b_cohort(tmp_path_factory.mktemp("report_b"))
    dataset, _ = read_clinic(folder)
    return run_audit(dataset, AS_OF)


def test_report_b_cohort(report_b: dict) -> None:
    c = report_b["cohort"]
    assert c["n_patients"] == 11
    assert c["switch_reasons"] == {"allergy": 3, "inefficacy": 8}
    assert c["prior_drug"] == {"natalizumab": 11}


def test_report_b_relapses(report_b: dict) -> None:
    r = report_b["relapses"]
    assert (r["pre_relapses"], r["post_relapses"]) == (28, 1)
    assert r["pre_person_years"] == pytest.approx(11 * YEAR, abs=1e-3)
    assert r["post_person_years"] == pytest.approx(11 * YEAR, abs=1e-3)
    assert r["arr_pre"] == pytest.approx(28 / (11 * YEAR), rel=1e-3)  # 2.55
    assert r["arr_post"] == pytest.approx(1 / (11 * YEAR), rel=1e-3)  # 0.09
    # exact Poisson 95% limits for 28 and 1 events as tabulated: 18.61-40.47 and 0.0253-5.572
    assert r["arr_pre_ci"] == pytest.approx([18.606 / (11 * YEAR), 40.468 / (11 * YEAR)], rel=1e-3)
    assert r["arr_post_ci"] == pytest.approx(
        [0.02532 / (11 * YEAR), 5.5716 / (11 * YEAR)], rel=1e-3
    )
    assert round(r["arr_pre"], 2) == 2.55 and round(r["arr_post"], 2) == 0.09
    assert r["rate_ratio"] == pytest.approx(1 / 28, rel=1e-3)
    lo, hi = r["rate_ratio_ci"]
    assert lo == pytest.approx(0.000873, rel=1e-2) and hi == pytest.approx(0.216, rel=1e-2)
    assert r["paired"]["p_value"] < 0.01
    assert r["km"]["events"] == 1 and r["km"]["censored"] == 10


def test_report_b_labs(report_b: dict) -> None:
    labs = report_b["labs"]
    assert labs["lymphopenia"]["n"] == 11
    assert {e["onset_day"] for e in labs["lymphopenia"]["episodes"]} == {30}
    leuco = labs["leucopenia"]
    assert leuco["n"] == 4
    assert all(e["onset_day"] <= 90 and e["normal_day"] <= 150 for e in leuco["episodes"])
    assert labs["neutropenia"]["n"] == 0
    assert labs["lymphopenia"]["episodes"][0]["nadir"] == pytest.approx(0.36)
    assert labs["lymphopenia"]["episodes"][0]["grade"] == 3


def test_report_b_thyroid_infections_mri(report_b: dict) -> None:
    t = report_b["thyroid"]
    assert (t["tpo_positive_n"], t["hypothyroid_n"], t["hyperthyroid_n"]) == (1, 1, 0)
    assert t["events"] == [
        {"patient_id": "P09", "kind": "tpo_positive", "day": 91},
        {"patient_id": "P09", "kind": "hypothyroid", "day": 273},
    ]
    assert (report_b["infections"]["any_n"], report_b["infections"]["serious_n"]) == (2, 0)
    mri = report_b["mri"]
    assert mri["pre"] == {"scanned_n": 11, "new_t2_n": 8, "gd_n": 4, "missing_n": 0}
    assert mri["post"] == {"scanned_n": 11, "new_t2_n": 0, "gd_n": 0, "missing_n": 0}
    # report B recorded no EDSS: NEDA-3 is not evaluable (it once read "10 of 11")
    neda = report_b["neda"]["year1"]
    assert (neda["evaluable_n"], neda["neda_n"], neda["not_evaluable_n"]) == (0, None, 11)
    assert neda["missing_n"] == {"follow_up": 0, "mri": 0, "edss": 11}
    assert neda["recorded"] == {"mri": True, "edss": False}


def test_every_count_has_its_records(report_b: dict) -> None:
    assert len(report_b["cohort"]["patients"]) == 11
    assert sum(p["pre"] for p in report_b["relapses"]["patients"]) == 28
    assert len(report_b["labs"]["lymphopenia"]["episodes"]) == 11
    assert len([s for s in report_b["mri"]["scans"] if s["when"] == "pre"]) == 11


def _one_patient(
    tmp_path: Path, relapse_days: list[int], last_record_day: int, scan_day: int | None = 400
):
    d0 = dt.date(2012, 3, 5)
    tables = {
        "treatments": [alemtuzumab_course("Q1", d0)],
        "relapses": [{"patient_id": "Q1", "onset_date": day(d0, d)} for d in relapse_days],
        "labs": [lab("Q1", day(d0, last_record_day), "tsh", 1.5, "mIU/L")],
    }
    if scan_day is not None:
        tables["mri"] = [
            {"patient_id": "Q1", "date": day(d0, scan_day), "new_t2": 0, "gd_enhancing": 0}
        ]
    dataset, _ = read_clinic(write_clinic(tmp_path, **tables))
    return d0, dataset


def test_relapse_window_edges(tmp_path: Path) -> None:
    d0, dataset = _one_patient(tmp_path, [-366, -365, -1, 0, 364, 365], 500)
    r = run_audit(dataset, day(d0, 600))["relapses"]
    assert (r["pre_relapses"], r["post_relapses"]) == (2, 2)  # -365, -1 | 0, 364
    assert r["patients"][0]["pre_days"] == r["patients"][0]["post_days"] == 365


def test_person_time_cut_at_end_of_follow_up(tmp_path: Path) -> None:
    d0, dataset = _one_patient(tmp_path, [50], 100, scan_day=None)
    r = run_audit(dataset, day(d0, 600))["relapses"]
    assert r["patients"][0]["post_days"] == 101  # days 0-100: the last record
    assert r["post_person_years"] == pytest.approx(101 / 365.25, abs=1e-3)
    r = run_audit(dataset, day(d0, 60))["relapses"]  # the last record dated by as-of: day 50
    assert r["patients"][0]["post_days"] == 51
    assert r["post_relapses"] == 1


def test_person_time_cut_at_as_of(tmp_path: Path) -> None:
    d0 = dt.date(2012, 3, 5)
    tables = {
        "treatments": [
            alemtuzumab_course("Q1", d0),
            {
                "patient_id": "Q1",
                "drug": "rituximab",
                "start_date": day(d0, 40),
                "end_date": day(d0, 200),
            },
        ],
    }
    dataset, _ = read_clinic(write_clinic(tmp_path, **tables))
    r = run_audit(dataset, day(d0, 60))["relapses"]  # a treatment running past as-of
    assert r["patients"][0]["post_days"] == 61


def test_therapy_pre_window(tmp_path: Path) -> None:
    d0 = dt.date(2012, 3, 5)
    tables = {
        "treatments": [
            {
                "patient_id": "Q1",
                "drug": "fingolimod",
                "start_date": day(d0, -800),
                "end_date": day(d0, -31),
                "stop_reason": "inefficacy",
            },
            alemtuzumab_course("Q1", d0),
        ],
        "relapses": [{"patient_id": "Q1", "onset_date": day(d0, d)} for d in (-900, -700, -20)],
        "labs": [lab("Q1", day(d0, 400), "tsh", 1.5, "mIU/L")],
    }
    dataset, _ = read_clinic(write_clinic(tmp_path, **tables))
    r = run_audit(dataset, day(d0, 500), AuditOptions(pre_window="therapy"))["relapses"]
    assert r["pre_relapses"] == 1  # -700 only: -900 before the therapy, -20 after it ended
    assert r["patients"][0]["pre_days"] == 770


def test_missing_post_scan_is_missing_not_inactive(tmp_path: Path) -> None:
    d0, dataset = _one_patient(tmp_path, [], 500, scan_day=600)  # outside days 270-455
    result = run_audit(dataset, day(d0, 700))
    assert result["mri"]["post"] == {"scanned_n": 0, "new_t2_n": 0, "gd_n": 0, "missing_n": 1}
    assert result["neda"]["year1"]["evaluable_n"] == 0


def test_subgroup_by_switch_reason(tmp_path_factory) -> None:
    dataset, _ = read_clinic(report_b_cohort(tmp_path_factory.mktemp("rb")))
    result = run_audit(dataset, AS_OF, AuditOptions(where={"switch_reason": "allergy"}))
    assert result["cohort"]["n_patients"] == 3
    assert result["relapses"]["pre_relapses"] == 9


def test_audit_json_command(tmp_path: Path) -> None:
    folder = report_b_cohort(tmp_path / "clinic")
    out = tmp_path / "audit.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dmtwatch",
            "audit",
            "--data",
            str(folder),
            "--as-of",
            "2011-01-31",
            "--format",
            "json",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    doc = json.loads(out.read_text())
    assert doc["relapses"]["rate_ratio"] == pytest.approx(0.03571, rel=1e-3)
    assert {m["term"] for m in doc["methods"]} >= {
        "Day 0",
        "Annualised relapse rate (ARR)",
        "NEDA-3",
    }


# Sparse real data: missing is never zero ------------------------------------------------

SPARSE_AS_OF = dt.date(2014, 1, 1)


def sparse_clinic(folder: Path, n: int = 15, relapsed: int = 3) -> Path:
    """A clinic as clinics send it: alemtuzumab, relapses only after day 0 (none before),
    one scan a year on, a lab at day 500, and neither EDSS scores nor any adverse event."""
    treatments, relapses, mri, labs = [], [], [], []
    for i in range(n):
        pid, d0 = f"S{i + 1:02d}", dt.date(2012, 1, 2) + dt.timedelta(days=7 * i)
        treatments.append(alemtuzumab_course(pid, d0))
        if i < relapsed:
            relapses.append({"patient_id": pid, "onset_date": day(d0, 100 + i)})
        mri.append({"patient_id": pid, "date": day(d0, 365), "new_t2": 0, "gd_enhancing": 0})
        labs.append(lab(pid, day(d0, 500), "tsh", 1.5, "mIU/L"))
    return write_clinic(folder, treatments=treatments, relapses=relapses, mri=mri, labs=labs)


@pytest.fixture(scope="module")
def sparse(tmp_path_factory) -> dict:
    dataset, _ = read_clinic(sparse_clinic(tmp_path_factory.mktemp("sparse")))
    return run_audit(dataset, SPARSE_AS_OF)


def _numbers(value) -> list[float]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


def test_no_relapses_before_day0_the_rate_ratio_is_not_estimable(sparse: dict) -> None:
    r = sparse["relapses"]
    assert (r["pre_relapses"], r["post_relapses"]) == (0, 3)
    assert r["rate_ratio"] is None and r["rate_ratio_estimable"] is False
    assert "no relapses before day 0" in r["rate_ratio_note"]
    # the exact conditional interval keeps its lower limit: 3 of 3 events after, equal
    # person-time: p_lo = 0.025 ** (1/3), ratio p / (1 - p)
    p_lo = 0.025 ** (1 / 3)
    assert r["rate_ratio_ci"][0] == pytest.approx(p_lo / (1 - p_lo), rel=1e-4)
    assert r["rate_ratio_ci"][1] is None
    # the negative binomial once printed 4.9e9 here
    assert r["negative_binomial"] is None and r["negative_binomial_estimable"] is False
    assert "no relapses before day 0" in r["negative_binomial_note"]
    assert max(_numbers({k: v for k, v in r.items() if k != "km"})) < 1e3


def test_rate_ratio_with_zero_counts() -> None:
    """Zero after: a ratio of 0 with its exact upper limit. Zero in both: nothing to
    compare. No person-time: nothing either. Never an infinite or absurd number."""
    after_none = rate_ratio(k0=10, t0=5.0, k1=0, t1=5.0)
    p_hi = 1 - 0.025 ** (1 / 10)  # Clopper-Pearson upper limit of 0 of 10
    assert after_none["rate_ratio"] == 0 and after_none["rate_ratio_estimable"] is True
    assert after_none["rate_ratio_ci"] == pytest.approx([0.0, p_hi / (1 - p_hi)], rel=1e-6)
    both_none = rate_ratio(k0=0, t0=5.0, k1=0, t1=5.0)
    assert both_none["rate_ratio"] is None and both_none["rate_ratio_ci"] is None
    assert both_none["rate_ratio_estimable"] is False
    assert both_none["rate_ratio_note"] == "no relapses before or after day 0"
    no_time = rate_ratio(k0=2, t0=0.0, k1=1, t1=5.0)
    assert (
        no_time["rate_ratio"] is None
        and no_time["rate_ratio_note"] == "no person-time before day 0"
    )


@pytest.mark.parametrize("empty", ["pre", "post"])
def test_negative_binomial_is_absent_when_a_period_has_no_relapses(empty: str) -> None:
    """The fit's log ratio runs off to infinity: it once returned 7e-11 (0 after) with a
    tight interval. Absent instead."""
    counts = np.array([1, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    zeros, py = np.zeros(15, int), np.full(15, 1.0)
    pre, post = (zeros, counts) if empty == "pre" else (counts, zeros)
    assert stats.negative_binomial_ratio(pre, post, py, py * 0.8) is None


def test_no_edss_neda_is_not_evaluable(sparse: dict) -> None:
    """Without EDSS it once read '12 of 15 had NEDA-3'."""
    year1 = sparse["neda"]["year1"]
    assert (year1["evaluable_n"], year1["neda_n"], year1["not_evaluable_n"]) == (0, None, 15)
    assert year1["missing_n"] == {"follow_up": 0, "mri": 0, "edss": 15}
    assert year1["recorded"] == {"mri": True, "edss": False}
    assert all(p["neda"] is None and p["missing"] == ["edss"] for p in year1["patients"])


def test_neda_is_decided_per_patient(tmp_path: Path) -> None:
    """Evaluable only with every part: follow-up, the year's scan, an EDSS on or before
    day 0 and one in the year. A patient lacking one is not evaluable, whatever else."""
    d0 = dt.date(2012, 3, 5)
    pids = ["N1", "N2", "N3", "N4", "N5"]
    edss = [  # N2 has none; N5 only a baseline
        {"patient_id": p, "date": day(d0, d), "score": 2.0}
        for p in ("N1", "N3", "N4")
        for d in (-20, 360)
    ] + [{"patient_id": "N5", "date": day(d0, -20), "score": 2.0}]
    tables = {
        "treatments": [alemtuzumab_course(p, d0) for p in pids],
        "relapses": [{"patient_id": "N3", "onset_date": day(d0, 200)}],
        "mri": [
            {"patient_id": p, "date": day(d0, 365), "new_t2": 0, "gd_enhancing": 0}
            for p in ("N1", "N2", "N3", "N5")  # N4 has no scan
        ],
        "edss": edss,
        "labs": [lab(p, day(d0, 500), "tsh", 1.5, "mIU/L") for p in pids],
    }
    dataset, _ = read_clinic(write_clinic(tmp_path, **tables))
    year1 = run_audit(dataset, day(d0, 600))["neda"]["year1"]
    by_id = {p["patient_id"]: p for p in year1["patients"]}
    assert by_id["N1"]["neda"] is True and by_id["N3"]["neda"] is False  # N3 relapsed
    assert by_id["N2"]["missing"] == ["edss"] and by_id["N2"]["neda"] is None
    assert by_id["N4"]["missing"] == ["mri"] and by_id["N5"]["missing"] == ["edss"]
    assert (year1["evaluable_n"], year1["neda_n"], year1["not_evaluable_n"]) == (2, 1, 3)
    assert year1["missing_n"] == {"follow_up": 0, "mri": 1, "edss": 2}


def test_no_adverse_events_table_infections_are_not_recorded(sparse: dict) -> None:
    """It once read 'none of 15 had an infection'."""
    inf = sparse["infections"]
    assert inf["recorded"] is False and inf["any_n"] is None and inf["serious_n"] is None
    assert sparse["adverse_events"]["recorded"] is False


def test_recorded_adverse_events_without_infection_count_zero(tmp_path: Path) -> None:
    folder = sparse_clinic(tmp_path, n=3, relapsed=0)
    ae = {"patient_id": "S01", "onset_date": "2012-02-01", "term": "Rash", "category": "other"}
    write_clinic(
        folder, adverse_events=[ae], patients=[{"patient_id": p} for p in ("S01", "S02", "S03")]
    )
    dataset, _ = read_clinic(folder)
    result = run_audit(dataset, SPARSE_AS_OF)
    inf = result["infections"]
    assert (inf["recorded"], inf["any_n"], inf["serious_n"]) == (True, 0, 0)


def test_rescue_therapy_is_the_protocols_list(tmp_path: Path) -> None:
    """One list for the timelines and the CNS watch: the protocol's `rescue_drugs`. IVIG
    is not one of them; ocrelizumab is (the timeline once said the opposite)."""
    from dmtwatch.protocols.schema import load_protocol

    d0 = dt.date(2012, 3, 5)
    treatments = [
        alemtuzumab_course("R1", d0),
        {"patient_id": "R1", "drug": "ivig", "start_date": day(d0, 200), "end_date": day(d0, 204)},
        {"patient_id": "R1", "drug": "ocrelizumab", "start_date": day(d0, 300)},
    ]
    labs_ = [lab("R1", day(d0, 400), "tsh", 1.5, "mIU/L")]
    dataset, _ = read_clinic(write_clinic(tmp_path, treatments=treatments, labs=labs_))
    result = run_audit(dataset, day(d0, 500))
    rescue = [e["label"] for e in result["timeline"] if e["kind"] == "rescue"]
    assert rescue == ["ocrelizumab"]
    protocol = load_protocol("alemtuzumab")
    assert result["cns"]["rescue_drugs"] == sorted(
        {d for r in protocol.imaging_findings for d in r.rescue_drugs}
    )


def test_thyroid_events_follow_the_engine_flags(tmp_path: Path) -> None:
    """THY-HYPO as `check` judges it: a high free T4 near the TSH excludes it, the
    nearest companion decides (T1: a high free T4 5 days on excludes the high TSH; T2:
    the free T4 12 days away is not the nearest, the normal one 2 days away is), and
    the lab's own limits are used where given (T3: TSH 4.8 is within its 0.3-5.5)."""
    d0 = dt.date(2012, 3, 5)
    pids = ["T1", "T2", "T3"]
    labs_ = [
        lab("T1", day(d0, 100), "tsh", 8.0, "mIU/L"),
        lab("T1", day(d0, 105), "free_t4", 40.0, "pmol/L"),
        lab("T2", day(d0, 100), "tsh", 8.0, "mIU/L"),
        lab("T2", day(d0, 102), "free_t4", 15.0, "pmol/L"),
        lab("T2", day(d0, 112), "free_t4", 40.0, "pmol/L"),
        {**lab("T3", day(d0, 100), "tsh", 4.8, "mIU/L"), "ref_low": 0.3, "ref_high": 5.5},
    ]
    treatments = [alemtuzumab_course(p, d0) for p in pids]
    dataset, _ = read_clinic(write_clinic(tmp_path, treatments=treatments, labs=labs_))
    thy = run_audit(dataset, day(d0, 300))["thyroid"]
    assert thy["events"] == [{"patient_id": "T2", "kind": "hypothyroid", "day": 100}]
    assert thy["hypothyroid_n"] == 1


def test_sql_literal_doubles_quotes() -> None:
    from dmtwatch import duck

    assert duck.sql_literal("O'Brien") == "'O''Brien'"
    assert duck.sql_literal(None) == "NULL" and duck.sql_literal(True) == "TRUE"
    assert duck.sql_literal(3) == "3" and duck.sql_literal(0.5) == "0.5"
    con = duck.cursor()
    try:
        text = "a'); DROP TABLE x; --"
        assert con.execute(f"SELECT {duck.sql_literal(text)}").fetchone() == (text,)
    finally:
        con.close()


def test_a_subgroup_value_with_a_quote_is_a_value(tmp_path: Path) -> None:
    folder = sparse_clinic(tmp_path, n=3, relapsed=0)
    dataset, _ = read_clinic(folder)
    result = run_audit(dataset, SPARSE_AS_OF, AuditOptions(where={"prior_drug": "o'brien"}))
    assert result["cohort"]["n_patients"] == 0


def test_sections_are_typed_results(report_b: dict, tmp_path: Path) -> None:
    """Each section carries its numbers, `.summary`, `.plot()` and `.methods`; the JSON is
    `to_dict()` of the same object."""
    from dmtwatch.outcomes.run import compute_audit

    dataset, _ = read_clinic(report_b_cohort(tmp_path))
    audit = compute_audit(dataset, AS_OF)
    assert audit.to_dict() == report_b
    rel = audit.relapses
    assert rel.pre_relapses == 28 and rel.summary.loc["pre", "relapses"] == 28
    assert rel.plot().startswith("<svg")
    assert audit.thyroid.summary.loc["hypothyroid", "patients"] == 1
    assert [m["term"] for m in audit.neda.methods] == ["NEDA-3"]
    first, *rest = report_b["methods"]
    assert first["term"] == "Protocols in force"
    assert [m for s in audit.sections.values() for m in s.methods] == rest


def test_methods_come_from_the_settings_and_the_protocol() -> None:
    from dmtwatch.outcomes.settings import methods, settings
    from dmtwatch.protocols.schema import load_protocol

    edss = settings().edss_worsening
    assert edss.words() == "1.5 points from 0, 1.0 up to 5.0, 0.5 above"
    assert edss.needed_sql("b") == "CASE WHEN b <= 0.0 THEN 1.5 WHEN b <= 5.0 THEN 1.0 ELSE 0.5 END"
    text = methods(AuditOptions(), AS_OF, load_protocol("alemtuzumab"), ("CNS-MRI", "CNS-RING"))
    neda = text["neda"][0]["definition"]
    assert "confirmed at least 168 days later" in neda and "window 270-455 days" in neda
    cns = text["cns"][0]["definition"]
    assert "CNS-MRI and CNS-RING" in cns and "plasma exchange" in cns and "rituximab" in cns
    assert "within 14 days" in text["thyroid"][1]["definition"]


def test_thyroid_events_agree_with_check(tmp_path: Path) -> None:
    """Every THY-HYPO and THY-HYPER finding `check` raises on a synthetic clinic (on the
    latest TSH) has its audit event: the same patient and kind, first seen on or before
    that result. One flag computation for both, so they cannot disagree."""
    from dmtwatch.engine.run import run_check
    from dmtwatch.synth import generate, write_csv

    as_of = dt.date(2016, 1, 15)
    write_csv(generate(40, 5, as_of), tmp_path)
    dataset, _ = read_clinic(tmp_path)
    result = run_audit(dataset, as_of)
    day0 = {p["patient_id"]: dt.date.fromisoformat(p["day0"]) for p in result["cohort"]["patients"]}
    first = {(e["patient_id"], e["kind"]): e["day"] for e in result["thyroid"]["events"]}
    findings = run_check(dataset, as_of, ["alemtuzumab"]).findings.to_pylist()
    kinds = {"THY-HYPO": "hypothyroid", "THY-HYPER": "hyperthyroid"}
    checked = [f for f in findings if f["code"] in kinds and f["patient_id"] in day0]
    assert checked  # the clinic has some, or the test proves nothing
    for f in checked:
        key = (f["patient_id"], kinds[f["code"]])
        assert key in first, key
        assert first[key] <= (f["date"] - day0[f["patient_id"]]).days


def test_flag_results_judge_the_latest_result_as_check_does(tmp_path: Path) -> None:
    """`engine.labs.flag_results` (every result, for the audit) and `check`'s flags (the
    latest result after day 0) are one definition: on the latest result they raise the
    same patients, for every flag of the protocol."""
    import ibis

    from dmtwatch.engine.context import Context
    from dmtwatch.engine.exposure import current_episode
    from dmtwatch.engine.labs import flag_results
    from dmtwatch.engine.run import connect, run_check, run_steps
    from dmtwatch.protocols.schema import load_protocol
    from dmtwatch.synth import generate, write_csv

    as_of = dt.date(2016, 1, 15)
    write_csv(generate(60, 5, as_of), tmp_path)
    dataset, _ = read_clinic(tmp_path)
    protocol = load_protocol("alemtuzumab")
    plan, queries = Context(), []
    for rule in protocol.flags:
        t = flag_results(plan, protocol, rule)
        j = t.join(current_episode(plan, protocol.therapy), "patient_id")
        j = j.filter(j.date > j.first_start).select("patient_id", "date", "value", "raised")
        queries.append((rule.code, ibis.to_sql(j, dialect="duckdb")))
    con = connect(dataset, as_of)
    run_steps(con, plan.steps)
    raised: dict[str, set[str]] = {code: set() for code, _sql in queries}
    for code, sql in queries:
        latest = con.execute(
            f"SELECT patient_id, raised FROM ({sql}) QUALIFY row_number() OVER "
            "(PARTITION BY patient_id ORDER BY date DESC, value DESC) = 1"
        ).fetchall()
        raised[code] |= {pid for pid, hit in latest if hit}
    found: dict[str, set[str]] = {code: set() for code in raised}
    for f in run_check(dataset, as_of, ["alemtuzumab"]).findings.to_pylist():
        if f["code"] in found:
            found[f["code"]].add(f["patient_id"])
    assert sum(len(p) for p in found.values()) > 5  # the clinic raises some
    assert raised == found


def test_a_setting_changes_the_calculation_and_its_methods_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """settings.yaml holds the EDSS worsening rule: confirmed 100 days later is not
    confirmed at 168 days, and is at 90; the NEDA-3 paragraph says which."""
    from dmtwatch.outcomes import settings as audit_settings
    from dmtwatch.outcomes.sections import mri as mri_section

    d0 = dt.date(2012, 3, 5)
    edss = [
        {"patient_id": "E1", "date": day(d0, d), "score": s}
        for d, s in ((-20, 2.0), (150, 2.0), (250, 3.5), (350, 3.5))
    ]
    tables = {
        "treatments": [alemtuzumab_course("E1", d0)],
        "mri": [{"patient_id": "E1", "date": day(d0, 365), "new_t2": 0, "gd_enhancing": 0}],
        "edss": edss,
        "labs": [lab("E1", day(d0, 500), "tsh", 1.5, "mIU/L")],
    }
    dataset, _ = read_clinic(write_clinic(tmp_path, **tables))
    shipped = run_audit(dataset, day(d0, 600))
    assert shipped["neda"]["year1"]["patients"][0]["edss_worsened"] is False
    assert "confirmed at least 168 days later" in shipped["methods"][-2]["definition"]

    s = audit_settings.settings()
    changed = s.model_copy(
        update={"edss_worsening": s.edss_worsening.model_copy(update={"confirm_days": 90})}
    )
    monkeypatch.setattr(audit_settings, "settings", lambda: changed)
    monkeypatch.setattr(mri_section, "settings", lambda: changed)
    local = run_audit(dataset, day(d0, 600))
    assert local["neda"]["year1"]["patients"][0]["edss_worsened"] is True
    assert "confirmed at least 90 days later" in local["methods"][-2]["definition"]
