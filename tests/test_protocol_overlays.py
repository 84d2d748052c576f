"""Clinic-owned protocols: overlays of shipped protocols, a clinic's own protocol files,
the configuration that names them, and everything that shows what is in force."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dmtwatch.cli import app
from dmtwatch.engine import plan_cache
from dmtwatch.engine.run import RULE_KINDS, run_check
from dmtwatch.io import read_clinic
from dmtwatch.protocols import ProtocolError, ProtocolSet, in_force, protocol_set, using
from dmtwatch.protocols.schema import load_protocol
from tests.clinic import alemtuzumab_course, day, lab, write_clinic

EXAMPLE = Path(__file__).with_name("clinic_protocols")
AS_OF = dt.date(2024, 6, 30)
KINDS = tuple(k.__name__ for k in RULE_KINDS)


def overlay(folder: Path, *changes: dict, target: str = "alemtuzumab", name: str = "local.yaml"):
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"overlay": target, "changes": list(changes)}
    (folder / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def change(path: str, value, **kw) -> dict:
    return {"path": path, "value": value, "source": "LOCAL-POLICY", "note": "Dr X, 2026-11", **kw}


def test_the_example_overlay_and_clinic_protocol_load() -> None:
    pset = ProtocolSet.load([EXAMPLE])
    assert pset.ids == ("alemtuzumab", "natalizumab", "ocrelizumab")
    alem, shipped = pset.get("alemtuzumab"), ProtocolSet.shipped().get("alemtuzumab")
    tsh = next(i for i in alem.schedule if i.id == "tsh")
    assert tsh.interval_days == 61 and tsh.grace_days == 21
    lympho = next(r for r in alem.grading if r.test == "lymphocytes")
    assert lympho.grades[4].below == 0.25 and lympho.grades[3].below == 0.5
    assert lympho.action.endswith("MS nurse line the same day.")
    # the change is cited where it applies; everything else is as shipped
    assert any(k.startswith("LOCAL-POLICY") for k in lympho.source)
    assert "0.2 -> 0.25" in alem.cite(lympho.source)
    assert alem.flags == shipped.flags and alem.therapy == shipped.therapy
    assert [(c.path, c.shipped, c.value) for c in pset.changes] == [
        ("schedule[id=tsh].interval_days", 92, 61),
        ("grading[test=lymphocytes].grades.4.below", 0.2, 0.25),
        ("grading[code=LAB-LYMPHOPENIA].action", shipped.grading[0].action, lympho.action),
    ]
    assert {c.file for c in pset.changes} == {str(EXAMPLE / "alemtuzumab-local.yaml")}
    # a new drug's protocol, graded by the shared CTCAE table
    ocr = pset.get("ocrelizumab")
    assert ocr.therapy.drug == "ocrelizumab"
    assert ocr.grading[0].grades == ProtocolSet.shipped().get("alemtuzumab").grading[2].grades
    assert pset.file_of("ocrelizumab") == str(EXAMPLE / "ocrelizumab.yaml")


def test_a_protocol_set_is_one_hashable_value() -> None:
    a, b = ProtocolSet.load([EXAMPLE]), ProtocolSet.load([str(EXAMPLE)])
    assert a == b and hash(a) == hash(b) and a != ProtocolSet.shipped()
    assert {a: 1}[b] == 1
    assert a.select(["alemtuzumab"]).ids == ("alemtuzumab",)
    assert a.select(["natalizumab"]).changes == ()


def _patients() -> dict[str, list[dict]]:
    """One patient per case: a course long ago, then a TSH done on a day near the new
    interval's edge, or a lymphocyte count near the new grade 4 threshold."""
    old = day(AS_OF, -400)
    rows: dict[str, list[dict]] = {"treatments": [], "labs": []}
    for pid, done in (("tsh-before", -81), ("tsh-on", -82), ("tsh-after", -83)):
        rows["treatments"].append(alemtuzumab_course(pid, old))
        rows["labs"].append(lab(pid, day(AS_OF, done), "tsh", 1.5, "m[IU]/L"))
    for pid, value in (("lym-below", 0.24), ("lym-at", 0.25), ("lym-above", 0.26)):
        rows["treatments"].append(alemtuzumab_course(pid, day(AS_OF, -60)))
        rows["labs"].append(lab(pid, day(AS_OF, -5), "lymphocytes", value, "10*9/L"))
    return rows


def _by_patient(found, code: str, test: str) -> dict[str, dict]:
    return {
        f["patient_id"]: f
        for f in found.findings.to_pylist()
        if f["code"] == code and f["test"] == test
    }


def test_an_overlay_moves_the_boundaries_it_changes(tmp_path) -> None:
    dataset, _ = read_clinic(write_clinic(tmp_path / "clinic", **_patients()))
    local = ProtocolSet.load(
        [
            overlay(
                tmp_path / "local",
                *[
                    change("schedule[id=tsh].interval_days", 61),
                    change("grading[test=lymphocytes].grades.4.below", 0.25),
                ],
            )
        ]
    )
    shipped, changed = (
        run_check(dataset, AS_OF, ProtocolSet.shipped()),
        run_check(dataset, AS_OF, local),
    )
    # TSH every 61 days (grace 21): done 82 days ago is on the edge, 83 is overdue
    overdue = _by_patient(changed, "MON-OVERDUE", "tsh")
    assert "tsh-before" not in overdue and "tsh-on" not in overdue
    assert overdue["tsh-after"]["severity"] == "routine"
    assert overdue["tsh-after"]["date"] == day(AS_OF, -83 + 61)
    assert not {"tsh-before", "tsh-on", "tsh-after"} & set(
        _by_patient(shipped, "MON-OVERDUE", "tsh")
    )
    # grade 4 below 0.25: 0.24 is grade 4 (high), 0.25 and 0.26 grade 3 (routine)
    graded = _by_patient(changed, "LAB-LYMPHOPENIA", "lymphocytes")
    assert (graded["lym-below"]["grade"], graded["lym-below"]["severity"]) == (4, "high")
    assert (graded["lym-at"]["grade"], graded["lym-at"]["severity"]) == (3, "routine")
    assert (graded["lym-above"]["grade"], graded["lym-above"]["severity"]) == (3, "routine")
    assert _by_patient(shipped, "LAB-LYMPHOPENIA", "lymphocytes")["lym-below"]["grade"] == 3
    assert "LOCAL-POLICY" not in graded["lym-at"]["source"]  # the text cites the policy
    assert "Local policy of this clinic" in graded["lym-at"]["source"]
    # the plan cache key follows every input
    assert plan_cache.plan_key(local, KINDS) != plan_cache.plan_key(ProtocolSet.shipped(), KINDS)


def test_the_plan_key_changes_with_overlays_and_clinic_protocols(tmp_path) -> None:
    folder = overlay(tmp_path / "local", change("schedule[id=tsh].grace_days", 30))
    one = plan_cache.plan_key(ProtocolSet.load([folder]), KINDS)
    assert one == plan_cache.plan_key(ProtocolSet.load([folder]), KINDS)
    overlay(folder, change("schedule[id=tsh].grace_days", 31))
    two = plan_cache.plan_key(ProtocolSet.load([folder]), KINDS)
    assert two != one
    (folder / "ocrelizumab.yaml").write_bytes((EXAMPLE / "ocrelizumab.yaml").read_bytes())
    three = plan_cache.plan_key(ProtocolSet.load([folder]), KINDS)
    assert len({one, two, three}) == 3


@pytest.mark.parametrize(
    ("changes", "messages"),
    [
        (
            [{"path": "schedule[id=tsh].interval_days", "value": 61, "note": "x"}],
            ["changes[0].source: every change must cite `source: LOCAL-POLICY`"],
        ),
        (
            [change("schedule[id=tsh].interval_days", 61, note=" ")],
            ["changes[0].note: a note saying who decided it and why is required"],
        ),
        (
            [change("schedule[id=tsh].intervall_days", 61)],
            ["changes[0].path: schedule[id=tsh].intervall_days: no key 'intervall_days'"],
        ),
        (
            [change("schedule[id=thyroid].interval_days", 61)],
            ["no item of 'schedule' has id=thyroid"],
        ),
        (
            [change("flags[code=THY-DISCORDANT].severity", "urgent")],
            ["2 items of 'flags' have code=THY-DISCORDANT: add a key"],
        ),
        (
            [change("schedule[id=tsh].interval_days", "monthly")],
            [
                "changes[0].value: schedule[id=tsh].interval_days: expected a whole number like "
                "the shipped value 92, got 'monthly'"
            ],
        ),
        (
            [change("schedule[id=tsh].interval_days", True)],
            ["expected a whole number like the shipped value 92, got True"],
        ),
        (
            [change("schedule[id=tsh].grace_days", -1)],
            [
                "changes[0].value: schedule[id=tsh].grace_days: Input should be greater than or "
                "equal to 0"
            ],
        ),
        (
            [change("relapse_imaging[code=CNS-MRI].severity", "soon")],
            ["relapse_imaging[code=CNS-MRI].severity: Input should be 'urgent'"],
        ),
        (
            [change("grading[test=alt].ctcae", "Creatinine increased")],
            ["'ctcae' cannot be changed by an overlay"],
        ),
        (
            # every problem at once, each naming its change
            [
                change("schedule[id=tsh].interval_days", 61, source="local"),
                change("schedule[id=cbc].grace", 3),
                change("schedule[id=cbc].grace_days", 1.5),
            ],
            ["changes[0].source", "changes[1].path", "changes[2].value"],
        ),
    ],
)
def test_a_bad_overlay_is_refused_with_every_problem_named(tmp_path, changes, messages) -> None:
    folder = overlay(tmp_path / "local", *changes)
    with pytest.raises(ProtocolError) as e:
        ProtocolSet.load([folder])
    text = str(e.value)
    for message in messages:
        assert f"{folder / 'local.yaml'}: " in text and message in text, text
    assert len(e.value.problems) == len(messages)


def test_overlays_and_clinic_files_are_checked_as_a_whole(tmp_path) -> None:
    folder = overlay(
        tmp_path / "local", change("schedule[id=tsh].interval_days", 61), target="nope"
    )
    overlay(folder, change("schedule[id=tsh].interval_days", 61), name="again.yaml")
    overlay(folder, change("schedule[id=tsh].interval_days", 50), name="zz-twice.yaml")
    clash = yaml.safe_load((EXAMPLE / "ocrelizumab.yaml").read_text())
    (folder / "natalizumab.yaml").write_text(yaml.safe_dump({**clash, "id": "natalizumab"}))
    copied = {**clash, "id": "ocr2"}
    copied["grading"] = [{**clash["grading"][0], "grades": {1: {"below_lln": 1.0}}}]
    (folder / "ocr2.yaml").write_text(yaml.safe_dump(copied))
    (folder / "notes.yaml").write_text("just: notes\n")
    with pytest.raises(ProtocolError) as e:
        ProtocolSet.load([folder, tmp_path / "missing"])
    text = str(e.value)
    assert f"{folder / 'local.yaml'}: overlay: no protocol 'nope' to change" in text
    assert (
        f"{folder / 'zz-twice.yaml'}: changes[0].path: schedule[id=tsh].interval_days: also changed by {folder / 'again.yaml'}"
        in text
    )
    assert (
        f"{folder / 'natalizumab.yaml'}: id: a shipped protocol has this id: change it with an overlay"
        in text
    )
    assert f"{folder / 'ocr2.yaml'}: grading[0].grades: grades come from the CTCAE table" in text
    assert f"{folder / 'notes.yaml'}: neither a protocol" in text
    assert f"{tmp_path / 'missing'}: no such folder of protocol files" in text


def test_the_configuration_names_the_clinic_folders(tmp_path, monkeypatch) -> None:
    config = tmp_path / "dmtwatch.toml"
    config.write_text(f'[protocols]\ndirs = ["{EXAMPLE}"]\n')
    assert protocol_set(config=config).ids == ("alemtuzumab", "natalizumab", "ocrelizumab")
    monkeypatch.setenv("DMTWATCH_CONFIG", str(config))
    assert "ocrelizumab" in in_force().ids  # run_check(dataset, as_of) uses it too
    monkeypatch.delenv("DMTWATCH_CONFIG")
    monkeypatch.chdir(tmp_path)  # ./dmtwatch.toml, relative folders from its own folder
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "ocr.yaml").write_bytes((EXAMPLE / "ocrelizumab.yaml").read_bytes())
    config.write_text('[protocols]\ndirs = ["mine"]\n')
    assert Path(in_force().file_of("ocrelizumab")).resolve() == tmp_path / "mine" / "ocr.yaml"
    config.write_text('[protocols]\ndir = "mine"\n[colours]\n')
    with pytest.raises(ProtocolError) as e:
        in_force()
    assert "dmtwatch.toml: protocols.dir: unknown setting" in str(e.value)
    assert "dmtwatch.toml: colours: unknown setting" in str(e.value)


def test_in_force_follows_the_active_set() -> None:
    local = ProtocolSet.load([EXAMPLE])
    with using(local):
        assert load_protocol("ocrelizumab").therapy.drug == "ocrelizumab"
        assert in_force() is local
    assert in_force() == ProtocolSet.shipped()


def test_the_protocols_command_lists_what_is_in_force() -> None:
    result = CliRunner().invoke(app, ["protocols", "--protocols", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "alemtuzumab 2026-11: Alemtuzumab safety monitoring (drug alemtuzumab)" in out
    assert "  changed schedule[id=tsh].interval_days: 92 -> 61\n" in out
    assert f"    by {EXAMPLE / 'alemtuzumab-local.yaml'} (LOCAL-POLICY): Dr A. Jones" in out
    assert "  changed grading[test=lymphocytes].grades.4.below: 0.2 -> 0.25\n" in out
    assert f"  file: {EXAMPLE / 'ocrelizumab.yaml'}\n" in out
    assert out.count("no local changes") == 2  # natalizumab, ocrelizumab
    listing = json.loads(
        CliRunner()
        .invoke(app, ["protocols", "--protocols", str(EXAMPLE), "--format", "json"])
        .output
    )
    alem = next(p for p in listing if p["id"] == "alemtuzumab")
    assert alem["changes"][0] == {
        "path": "schedule[id=tsh].interval_days",
        "shipped": 92,
        "value": 61,
        "overlay": str(EXAMPLE / "alemtuzumab-local.yaml"),
        "note": "Dr A. Jones (endocrinology), 2026-10-12: TSH every 2 months in years 2-3, when most thyroid events start",
    }
    assert in_force() == ProtocolSet.shipped(), "the command leaves nothing active"


def test_a_refused_overlay_stops_the_command_with_exit_2(tmp_path) -> None:
    folder = overlay(tmp_path / "local", change("schedule[id=tsh].interval_days", "often"))
    result = CliRunner().invoke(app, ["check", "--data", str(EXAMPLE), "--protocols", str(folder)])
    assert result.exit_code == 2
    assert "error: " in result.output and "got 'often'" in result.output


def test_the_worklist_header_and_audit_methods_name_the_overlays(tmp_path) -> None:
    clinic = write_clinic(tmp_path / "clinic", **_patients())
    result = CliRunner().invoke(
        app,
        ["check", "--data", str(clinic), "--as-of", AS_OF.isoformat(), "--protocols", str(EXAMPLE)],
    )
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0]
    assert header.startswith(
        "Protocols in force: alemtuzumab (shipped), natalizumab (shipped), ocrelizumab ("
    )
    assert "schedule[id=tsh].interval_days 92 -> 61" in header
    from dmtwatch.outcomes.context import AuditOptions
    from dmtwatch.outcomes.methods import methods

    with using(ProtocolSet.load([EXAMPLE])):
        line = methods(AuditOptions(), AS_OF.isoformat())[0]
    assert line["term"] == "Protocols in force"
    assert "grading[test=lymphocytes].grades.4.below 0.2 -> 0.25" in line["definition"]


def test_an_overlay_may_change_a_clinic_protocol(tmp_path) -> None:
    folder = tmp_path / "local"
    folder.mkdir()
    (folder / "ocrelizumab.yaml").write_bytes((EXAMPLE / "ocrelizumab.yaml").read_bytes())
    overlay(folder, change("schedule[id=cbc].interval_days", 92), target="ocrelizumab")
    pset = ProtocolSet.load([folder])
    assert pset.get("ocrelizumab").schedule[0].interval_days == 92
    assert [(c.protocol, c.shipped, c.value) for c in pset.changes] == [("ocrelizumab", 183, 92)]
    with pytest.raises(ProtocolError, match=r"changes\[0\].path: therapy.drug: 'drug' cannot"):
        ProtocolSet.load([overlay(folder, change("therapy.drug", "rituximab"), name="z.yaml")])


def test_serve_and_docs_take_the_clinic_folders(tmp_path) -> None:
    bad = overlay(tmp_path / "bad", change("schedule[id=tsh].interval_days", 61, note=""))
    result = CliRunner().invoke(app, ["serve", "--protocols", str(bad)])
    assert result.exit_code == 2 and "changes[0].note" in result.output  # before listening
    out = tmp_path / "pages"
    args = ["docs", "--out", str(out), "--vignettes", "", "--protocols", str(EXAMPLE)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    page = (out / "LOCAL-OCR-NEUTROPENIA.md").read_text()
    assert "ocrelizumab.yaml" in page and "Neutrophil count decreased" in page
    lympho = (out / "LAB-LYMPHOPENIA.md").read_text()
    assert "| 4 | value < 0.25 | high |" in lympho and "MS nurse line" in lympho


def test_audit_methods_name_the_overlays(tmp_path) -> None:
    data = Path(__file__).parent / "vignettes" / "ring_relapse_rescued"
    args = ["audit", "--data", str(data), "--as-of", "2016-06-01", "--format", "json"]
    result = CliRunner().invoke(app, [*args, "--out", "-", "--protocols", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    methods = json.loads(result.output)["methods"]
    assert methods[0]["term"] == "Protocols in force"
    assert "schedule[id=tsh].interval_days 92 -> 61" in methods[0]["definition"]


def test_overlapping_changes_and_bad_entries_are_each_named(tmp_path) -> None:
    folder = overlay(
        tmp_path / "local",
        change("grading[test=lymphocytes].severity", {1: "info", 2: "info", 3: "high", 4: "high"}),
        "not a change",
        change("grading[test=lymphocytes].severity.3", "urgent"),
        change("schedule[id=nope].grace_days", 3, source=None),
    )
    with pytest.raises(ProtocolError) as e:
        ProtocolSet.load([folder])
    text = str(e.value)
    assert "changes[1]: a change is a mapping" in text
    assert "changes[2].path: grading[test=lymphocytes].severity.3: also changed by" in text
    assert "changes[3].source: every change must cite" in text
    assert (
        "changes[3].path: schedule[id=nope].grace_days: no item of 'schedule' has id=nope" in text
    )
    assert len(e.value.problems) == 4
