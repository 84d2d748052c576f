"""The shared in-memory DuckDB (dmtwatch.duck) and the engine's small-input settings.

Concurrent work shares one database per process, so what one cursor makes must be
invisible to another; and the engine plans small inputs without DuckDB's optimizer, so
its findings must not depend on that setting.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dmtwatch import duck
from dmtwatch.engine import run
from dmtwatch.io import read_clinic
from dmtwatch.model.dataset import Dataset
from dmtwatch.synth import generate, write_csv

AS_OF = dt.date(2016, 1, 15)


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory):
    folder: Path = tmp_path_factory.mktemp("clinic")
    write_csv(generate(60, 11, AS_OF), folder)
    dataset, _ = read_clinic(folder)
    return dataset


def test_cursors_do_not_see_each_others_tables() -> None:
    a, b = duck.cursor(), duck.cursor()
    a.execute("CREATE TEMP TABLE mine AS SELECT 1 AS x")
    a.register("registered", pa.table({"x": [1]}))
    for name in ("mine", "registered"):
        with pytest.raises(Exception, match="does not exist"):
            b.execute(f"SELECT * FROM {name}")
    a.close()
    c = duck.cursor()  # a closed cursor's temp tables are gone, not left in the database
    with pytest.raises(Exception, match="does not exist"):
        c.execute("SELECT * FROM mine")
    b.close()
    c.close()


def test_optimizer_setting_belongs_to_its_own_database() -> None:
    off, on = duck.cursor(optimize=False), duck.cursor()
    setting = "SELECT current_setting('enable_optimizer')"
    assert off.execute(setting).fetchall() == [(False,)]
    assert on.execute(setting).fetchall() == [(True,)]
    off.close()
    on.close()


def test_arrow_gives_the_same_table_by_either_path() -> None:
    con = duck.cursor()
    sql = "SELECT range AS i, 'r' || range AS s FROM range(1000) ORDER BY i"
    small = duck.arrow(con, sql, rows=10)
    large = duck.arrow(con, sql, rows=duck.SMALL_ROWS + 1)
    assert small.num_rows == 1000
    assert small.equals(large)
    con.close()


def test_findings_do_not_depend_on_the_optimizer(clinic, monkeypatch) -> None:
    assert run.is_small(clinic)  # 60 patients: planned without the optimizer
    small = run.run_check(clinic, AS_OF)
    monkeypatch.setattr(duck, "SMALL_ROWS", 0)  # the same input, planned as a large one
    assert not run.is_small(clinic)
    large = run.run_check(clinic, AS_OF)
    assert small.findings.num_rows > 20
    assert small.findings.equals(large.findings)
    assert small.evidence.equals(large.evidence)


def test_concurrent_runs_on_one_database_give_each_their_own_findings(clinic) -> None:
    """Two cohorts at once (as the CDS service's worker threads do) on cursors of one
    database: each run's temp tables have the same names, and neither sees the other's."""
    ids = clinic["patients"].column("patient_id").to_pylist()
    halves = [_only(clinic, ids[::2]), _only(clinic, ids[1::2])]
    alone = [run.run_check(h, AS_OF).findings for h in halves]
    together: list = [None, None]

    def work(i: int) -> None:
        for _ in range(3):
            together[i] = run.run_check(halves[i], AS_OF).findings

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        assert alone[i].num_rows > 0
        assert together[i].equals(alone[i])


def _only(dataset: Dataset, patients: list[str]) -> Dataset:
    keep = pa.array(patients)
    return Dataset(
        {
            name: t.filter(pc.is_in(t["patient_id"], value_set=keep))
            for name, t in dataset.tables.items()
        }
    )


@pytest.mark.parametrize(
    ("value", "sql"),
    [
        (None, "NULL"),
        (True, "TRUE"),
        (3, "3"),
        (0.5, "0.5"),
        ("O'Brien", "'O''Brien'"),
        ("'; DROP TABLE x; --", "'''; DROP TABLE x; --'"),
        (dt.date(2016, 1, 15), "DATE '2016-01-15'"),
    ],
)
def test_sql_literal_reads_back_as_the_value(value, sql) -> None:
    """The one quoter: every value reads back as itself, quotes and all."""
    from dmtwatch.duck import sql_literal

    assert sql_literal(value) == sql
    con = duckdb.connect()
    assert con.execute(f"SELECT {sql_literal(value)}").fetchone()[0] == value
