"""A finding's stable identity (`key`, contract section 4): the same while the condition
persists, from run to run and as-of date to as-of date, through a store re-import and
the FHIR path; a new one when it is a new occurrence (a new relapse, scan, abnormal run
after a normal result, a test done and overdue again).

Each case is one patient's rows written as real CSV and checked by the real pipeline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from dmtwatch.protocols.schema import load_protocol
from tests.clinic import day, findings, write_clinic
from tests.test_cli import dmtwatch
from tests.test_rule_boundaries import AS_OF, D0, POST, Rows

ALEM = load_protocol("alemtuzumab")


def _one(tmp_path: Path, rows: Rows, code: str, as_of: dt.date, name: str = "c") -> dict:
    """The patient's one finding of `code` as of a date (fails if there is none)."""
    folder = write_clinic(tmp_path / f"{name}-{as_of}", **rows.tables)
    (found,) = findings(folder, as_of, code)
    return found


def _key(tmp_path: Path, build, code: str, as_of: dt.date, name: str) -> str:
    return _one(tmp_path, build(Rows("P1")), code, as_of, name)["key"]


# (code, rows, as-of dates over which the condition persists, rows with a new occurrence,
#  the as-of date to look at them)
LYMPH_LOW = 0.4  # grade 3 lymphopenia (below 0.5): raised whatever the lab's range


def lymphopenia(p: Rows) -> Rows:
    return p.course(D0).lab(POST, "lymphocytes", LYMPH_LOW)


def lymphopenia_worse(p: Rows) -> Rows:  # the same run of low results, lower still
    return lymphopenia(p).lab(day(POST, 30), "lymphocytes", 0.15)


def lymphopenia_again(p: Rows) -> Rows:  # back to normal in between: a new occurrence
    return (
        lymphopenia(p)
        .lab(day(POST, 30), "lymphocytes", 2.0)
        .lab(day(POST, 60), "lymphocytes", LYMPH_LOW)
    )


def hypothyroid(p: Rows) -> Rows:
    return p.course(D0).lab(POST, "tsh", 9.0).lab(POST, "free_t4", 15.0)


def hypothyroid_still(p: Rows) -> Rows:
    return hypothyroid(p).lab(day(POST, 40), "tsh", 8.0)


def hypothyroid_again(p: Rows) -> Rows:
    return hypothyroid(p).lab(day(POST, 40), "tsh", 2.0).lab(day(POST, 80), "tsh", 8.0)


RELAPSE = day(D0, 150)


def relapse_no_scan(p: Rows) -> Rows:
    return p.course(D0).relapse(RELAPSE)


def second_relapse(p: Rows) -> Rows:
    return relapse_no_scan(p).mri(day(RELAPSE, 3)).relapse(day(RELAPSE, 40))


SCAN = day(D0, 170)


def ring_scan(p: Rows) -> Rows:
    return p.course(D0).mri(SCAN, ring=2)


def ring_followed_up(p: Rows) -> Rows:  # the lesions receded: the same occurrence, lower
    return ring_scan(p).mri(day(SCAN, 30), ring=0)


def ring_again(p: Rows) -> Rows:
    return ring_followed_up(p).mri(day(SCAN, 60), ring=1)


CASES = [
    # code, build, persists over (as-of dates), same occurrence later, new occurrence, as of
    (
        "LAB-LYMPHOPENIA",
        lymphopenia,
        [day(POST, 1), day(POST, 25)],
        lymphopenia_worse,
        lymphopenia_again,
        day(POST, 61),
    ),
    (
        "THY-HYPO",
        hypothyroid,
        [day(POST, 1), day(POST, 35)],
        hypothyroid_still,
        hypothyroid_again,
        day(POST, 81),
    ),
    (
        "CNS-MRI",
        relapse_no_scan,
        # urgent, then aged to high after 90 days: one occurrence
        [day(RELAPSE, 1), day(RELAPSE, 120)],
        None,
        second_relapse,
        day(RELAPSE, 41),
    ),
    (
        "CNS-RING",
        ring_scan,
        [day(SCAN, 1), day(SCAN, 29)],
        ring_followed_up,
        ring_again,
        day(SCAN, 61),
    ),
]


@pytest.mark.parametrize(
    ("code", "build", "persists", "same", "new", "later"), CASES, ids=[c[0] for c in CASES]
)
def test_the_key_holds_while_the_condition_persists_and_changes_with_a_new_one(
    tmp_path: Path, code, build, persists, same, new, later
) -> None:
    keys = {_key(tmp_path, build, code, d, "base") for d in persists}
    assert len(keys) == 1, f"{code}: the key changed between as-of dates {persists}"
    (key,) = keys
    if same is not None:
        assert _key(tmp_path, same, code, later, "same") == key
    assert _key(tmp_path, new, code, later, "new") != key


def test_cns_mri_keeps_its_key_when_it_ages_to_a_lower_severity(tmp_path: Path) -> None:
    rule = ALEM.relapse_imaging[0]
    assert rule.ageing is not None
    early = _one(tmp_path, relapse_no_scan(Rows("P1")), "CNS-MRI", day(RELAPSE, 1))
    late_day = day(RELAPSE, rule.ageing.after_days + 1)
    late = _one(tmp_path, relapse_no_scan(Rows("P1")), "CNS-MRI", late_day, "late")
    assert (early["severity"], late["severity"]) == (rule.severity, rule.ageing.severity)
    assert early["key"] == late["key"]


def test_the_key_is_the_documented_hash_of_its_parts(tmp_path: Path) -> None:
    """protocol, code, patient, test ('' if none) and anchor (here the relapse onset),
    joined by the unit separator (0x1F): the first 32 hex digits of the SHA-256."""
    found = _one(tmp_path, relapse_no_scan(Rows("P1")), "CNS-MRI", day(RELAPSE, 1))
    parts = ["alemtuzumab", "CNS-MRI", "P1", "", RELAPSE.isoformat()]
    assert found["key"] == hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def test_an_overdue_test_keeps_its_key_until_it_is_done(tmp_path: Path) -> None:
    """Overdue from the same due date: one occurrence; done and overdue again: another."""
    cbc = next(i for i in ALEM.schedule if i.id == "cbc")
    assert cbc.interval_days is not None and cbc.grace_days is not None

    def overdue(p: Rows) -> Rows:
        p.course(D0)
        for test in cbc.tests:
            p.lab(day(D0, -3), test, 5.0)  # the baseline, then nothing
        return p

    due = day(D0 + dt.timedelta(days=4), cbc.interval_days)
    first = day(due, cbc.grace_days + 1)
    rows = overdue(Rows("P1"))
    a = [f for f in findings(write_clinic(tmp_path / "a", **rows.tables), first, "MON-OVERDUE")]
    later = day(first, 20)
    b = [f for f in findings(write_clinic(tmp_path / "b", **rows.tables), later, "MON-OVERDUE")]
    cbc_a = next(f for f in a if f["test"] == "cbc")
    cbc_b = next(f for f in b if f["test"] == "cbc")
    assert cbc_a["key"] == cbc_b["key"]

    done = overdue(Rows("P1"))
    for test in cbc.tests:
        done.lab(day(first, 1), test, 5.0)
    again = day(day(first, 1), cbc.interval_days + cbc.grace_days + 1)
    c = findings(write_clinic(tmp_path / "c", **done.tables), again, "MON-OVERDUE")
    cbc_c = next(f for f in c if f["test"] == "cbc")
    assert cbc_c["key"] != cbc_a["key"]


def test_keys_survive_a_store_import_and_a_reimport(tmp_path: Path) -> None:
    """CSV checked directly, imported into SQLite, and imported again: the same keys."""
    rows = Rows("P1")
    lymphopenia(rows)
    ring_scan(rows)
    folder = write_clinic(tmp_path / "clinic", **rows.tables)
    db = f"sqlite:///{tmp_path / 'clinic.db'}"

    def keys(*source: str) -> list[str]:
        proc = dmtwatch("check", *source, "--as-of", AS_OF.isoformat(), "--format", "json")
        return [f["key"] for f in json.loads(proc.stdout)["findings"]]

    direct = keys("--data", str(folder))
    assert len(direct) >= 2
    dmtwatch("import", "--data", str(folder), "--db", db)
    assert keys("--db", db) == direct
    dmtwatch("import", "--data", str(folder), "--db", db)
    assert keys("--db", db) == direct


@pytest.mark.parametrize(
    "vignette", ["ring_relapse_6_months", "tpo_antibodies_then_hypothyroidism"]
)
def test_keys_are_the_same_from_fhir(vignette: str) -> None:
    """The same clinic as CSV and as FHIR R4 (the vignette's fhir/ copy): the same keys."""
    from dmtwatch.engine.run import run_check
    from dmtwatch.fhir.read import read_fhir
    from dmtwatch.io import read_clinic

    folder = Path(__file__).parent / "vignettes" / vignette
    spec = json.loads((folder / "expected.json").read_text())
    for case in spec.get("cases", [spec]):
        day_ = dt.date.fromisoformat(case["as_of"])
        from_csv = run_check(read_clinic(folder)[0], day_).findings
        from_fhir = run_check(read_fhir(folder / "fhir").dataset, day_).findings
        assert from_csv.num_rows > 0
        assert from_fhir.column("key").to_pylist() == from_csv.column("key").to_pylist()
