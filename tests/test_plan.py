"""The compiled plan: SQL once, cached on disk under a key of everything it depends on."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.compute as pc
import pytest

from dmtwatch.engine import plan_cache
from dmtwatch.engine.run import RULE_KINDS, _plan_for, compile_plan, run_check
from dmtwatch.io import read_clinic
from dmtwatch.protocols import ProtocolSet
from dmtwatch.protocols.schema import load_protocols, protocol_names

VIGNETTE = Path(__file__).parent / "vignettes" / "ring_relapse_rescued"


def test_cached_plan_gives_the_same_findings_as_a_fresh_compile(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("DMTWATCH_CACHE_DIR", str(tmp_path))
    ids = ProtocolSet.shipped()
    key = plan_cache.plan_key(ids, tuple(k.__name__ for k in RULE_KINDS))
    assert plan_cache.read(key) is None
    _plan_for.cache_clear()
    fresh = _plan_for(ids)
    assert plan_cache.read(key) is not None, "the plan was written"
    _plan_for.cache_clear()
    cached = _plan_for(ids)
    assert cached == fresh == compile_plan(load_protocols())
    dataset, _ = read_clinic(VIGNETTE)
    a = run_check(dataset, dt.date(2015, 10, 1))
    assert a.findings.num_rows > 0
    _plan_for.cache_clear()
    b = run_check(dataset, dt.date(2015, 10, 1))
    assert a.findings.equals(b.findings) and a.evidence.equals(b.evidence)


def test_plan_key_changes_with_the_protocols_and_the_rules() -> None:
    kinds = tuple(k.__name__ for k in RULE_KINDS)
    shipped = ProtocolSet.shipped()
    one = plan_cache.plan_key(shipped.select(["alemtuzumab"]), kinds)
    assert one != plan_cache.plan_key(shipped, kinds)
    assert one != plan_cache.plan_key(shipped.select(["alemtuzumab"]), kinds[:2])
    assert one == plan_cache.plan_key(ProtocolSet.shipped().select(["alemtuzumab"]), kinds)


def test_plan_key_reads_the_source_of_every_rule_kind() -> None:
    """A rule kind's query is compiled into the plan: its module's source is in the key,
    so editing it can never run a stale cached plan."""
    packages = {package for package, suffix in plan_cache._INPUTS if suffix == ".py"}
    for kind in RULE_KINDS:
        assert kind.__module__.rpartition(".")[0] in packages, kind.__module__


def test_unwritable_cache_is_not_fatal(monkeypatch, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DMTWATCH_CACHE_DIR", str(blocker))
    plan_cache.write("k", {"steps": []})
    assert plan_cache.read("k") is None


@pytest.mark.parametrize("as_of", ["2015-08-29", "2015-10-01"])
def test_nothing_after_as_of_is_used(as_of: str) -> None:
    """Removing every row dated after as-of changes nothing."""
    from dmtwatch.model.dataset import Dataset
    from dmtwatch.model.tables import EVENT_DATE

    day = dt.date.fromisoformat(as_of)
    dataset, _ = read_clinic(VIGNETTE)
    cut = Dataset(
        {
            name: (t.filter(pc.less_equal(t[EVENT_DATE[name]], day)) if name in EVENT_DATE else t)
            for name, t in dataset.tables.items()
        }
    )
    assert cut.row_counts() != dataset.row_counts()
    a, b = run_check(dataset, day), run_check(cut, day)
    assert a.findings.equals(b.findings)


def test_each_rule_reads_one_staged_table_so_empty_ones_are_skipped() -> None:
    """run_rules skips a rule whose staged rows are empty; that needs each rule's queries
    to read that one table (compile_plan refuses a rule that reads more)."""
    plan = compile_plan(load_protocols())
    steps = {s.name for s in plan.steps}
    assert plan.rules and all(r.stage in steps for r in plan.rules)


def test_a_record_with_nothing_to_find_gives_empty_tables_with_their_columns() -> None:
    from dmtwatch.engine.findings import EVIDENCE_COLUMNS, OUTPUT_COLUMNS
    from dmtwatch.model.dataset import Dataset

    result = run_check(Dataset(), dt.date(2015, 10, 1))
    assert result.findings.num_rows == 0 and result.evidence.num_rows == 0
    assert tuple(result.findings.column_names) == OUTPUT_COLUMNS
    assert tuple(result.evidence.column_names) == EVIDENCE_COLUMNS


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from dmtwatch.synth import generate, write_csv

    folder = tmp_path_factory.mktemp("clinic")
    write_csv(generate(80, 5, dt.date(2016, 1, 15)), folder)
    return read_clinic(folder)[0]


@pytest.mark.parametrize("protocol", protocol_names())
def test_a_protocol_whose_drug_nobody_received_finds_nothing(synthetic, protocol, monkeypatch):
    """What `needed_for` relies on: every rule starts from exposure to its protocol's drug.
    Checked by running every rule anyway on a clinic without that drug."""
    from dmtwatch.engine import run
    from dmtwatch.model.dataset import Dataset
    from dmtwatch.protocols.schema import load_protocol

    day = dt.date(2016, 1, 15)
    everyone = run_check(synthetic, day).findings.column("protocol").to_pylist()
    assert set(everyone) == set(protocol_names()), "the clinic exercises every protocol"
    drug = load_protocol(protocol).therapy.drug
    tables = dict(synthetic.tables)
    treatments = tables["treatments"]
    tables["treatments"] = treatments.filter(pc.not_equal(treatments["drug"], drug))
    without = Dataset(tables)
    selected = run_check(without, day)
    monkeypatch.setattr(run, "needed_for", lambda plan, dataset: plan)
    full = run_check(without, day)
    assert protocol not in full.findings.column("protocol").to_pylist()
    assert full.findings.num_rows > 0
    assert selected.findings.equals(full.findings) and selected.evidence.equals(full.evidence)


def test_one_patients_record_needs_only_their_therapys_steps(synthetic) -> None:
    from dmtwatch.engine.run import needed_for
    from dmtwatch.model.dataset import Dataset

    plan = _plan_for(ProtocolSet.shipped())
    treatments = synthetic["treatments"]
    treatments = treatments.filter(pc.equal(treatments["drug"], "alemtuzumab"))
    only = needed_for(plan, Dataset({"treatments": treatments}))
    assert {r.drug for r in only.rules} == {"alemtuzumab"}
    assert not any("natalizumab" in s.name for s in only.steps)
    assert {"observations", "lab_defaults"} <= {s.name for s in only.steps}
    assert needed_for(plan, synthetic) is plan  # the cohort needs all of it
