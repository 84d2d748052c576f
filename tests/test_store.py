"""The store: round trips with exact types, once-only rows, atomic saves, migrations, errors."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import column as sa_column
from sqlalchemy import create_engine, func, insert, select
from sqlalchemy import table as sa_table
from sqlalchemy.engine import make_url

from dmtwatch.model.dataset import Dataset, arrow_schema
from dmtwatch.model.tables import CANONICAL_TYPES
from dmtwatch.store import StoreError, load, save
from dmtwatch.store.connection import SQLITE_BUSY_TIMEOUT_MS, alembic_config, open_store
from dmtwatch.store.rowkey import row_keys
from dmtwatch.store.schema import ROW_KEY, TABLES, key_columns, metadata

D = date


def sample() -> Dataset:
    """Every table, with a null in every nullable column and awkward text."""
    return Dataset(
        {
            "patients": pa.table(
                {
                    "patient_id": ["P001", "P002", "P003"],
                    "sex": ["F", "M", None],
                    "birth_date": ["1980", "1975-06", "1990-02-03"],
                    "ms_type": ["RRMS", None, "SPMS"],
                    "ms_onset_date": [D(2010, 3, 1), None, D(2001, 12, 31)],
                }
            ),
            "treatments": pa.table(
                {
                    "patient_id": ["P001", "P001", "P002"],
                    "drug": ["alemtuzumab", "alemtuzumab", "natalizumab"],
                    "start_date": [D(2014, 5, 1), D(2015, 5, 4), D(2012, 1, 9)],
                    "end_date": [D(2014, 5, 5), None, D(2013, 2, 1)],
                    "course": [1, 2, None],
                    "dose": [12.0, 12.0, None],
                    "dose_unit": ["mg", "mg", None],
                    "stop_reason": [None, None, "pml_risk"],
                }
            ),
            "labs": pa.table(
                {
                    "patient_id": ["P001", "P001", "P002", "P002"],
                    "date": [D(2014, 6, 1), D(2014, 6, 1), D(2014, 7, 1), D(2014, 7, 2)],
                    "test": ["platelets", "urine_blood", "tsh", "creatinine"],
                    "value": [150.0, None, 0.1, 1e-7],
                    "value_text": [None, "positive", None, "tab\there|pipe 3:x ü"],
                    "unit": ["10^9/L", None, "mU/L", "µmol/L"],
                    "ref_low": [150.0, None, 0.4, None],
                    "ref_high": [400.0, None, 4.0, 110.5],
                    "value_reported": ["150", "Positive", "0.1", None],
                    "unit_reported": ["G/L", None, "µU/mL", None],
                }
            ),
            "relapses": pa.table(
                {
                    "patient_id": ["P001", "P001", "P003"],
                    "onset_date": [D(2013, 1, 1), D(2016, 2, 29), D(2019, 7, 7)],
                    "confirmed": [True, False, None],
                    "severity": ["mild", None, "severe"],
                }
            ),
            "mri": pa.table(
                {
                    "patient_id": ["P001", "P002"],
                    "date": [D(2015, 1, 1), D(2015, 1, 2)],
                    "region": ["brain", "spine"],
                    "contrast": [True, None],
                    "new_t2": [0, 3],
                    "gd_enhancing": [None, 1],
                    "ring_enhancing": [0, None],
                }
            ),
            "edss": pa.table(
                {
                    "patient_id": ["P001", "P001"],
                    "date": [D(2014, 1, 1), D(2015, 1, 1)],
                    "score": [2.5, 0.0],
                }
            ),
            "adverse_events": pa.table(
                {
                    "patient_id": ["P001", "P002"],
                    "onset_date": [D(2016, 3, 1), D(2013, 4, 4)],
                    "term": ["Graves' disease", "PML"],
                    "category": ["thyroid", "infection"],
                    "serious": [False, True],
                    "grade": [None, 4],
                    "outcome": ["recovering", None],
                    "resolution_date": [None, D(2014, 1, 1)],
                }
            ),
        }
    )


def table(name: str, rows: list[dict]) -> pa.Table:
    """A canonical table from a few rows; columns not given are null."""
    return pa.Table.from_pylist(rows, schema=arrow_schema(name))


def with_table(dataset: Dataset, name: str, table: pa.Table) -> Dataset:
    return Dataset({**dataset.tables, name: table})


def assert_same(actual: Dataset, expected: Dataset) -> None:
    for name in CANONICAL_TYPES:
        assert actual[name].schema == expected[name].schema, name
        assert actual[name].to_pylist() == expected[name].to_pylist(), name


def stored_rows(url: str) -> dict[str, int]:
    """Row counts straight from the database, not through load()."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in TABLES.items()
            }
    finally:
        engine.dispose()


def test_round_trip_keeps_values_types_and_nulls(db_url: str) -> None:
    dataset = sample()
    assert save(dataset, db_url) == dataset.row_counts()
    assert_same(load(db_url), dataset)


def test_staging_in_small_batches_gives_the_same_result(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dmtwatch.store.database.CHUNK", 2)  # executemany path (SQLite)
    dataset = sample()
    assert save(dataset, db_url) == dataset.row_counts()
    assert_same(load(db_url), dataset)


def test_saving_the_same_rows_twice_stores_them_once(db_url: str) -> None:
    dataset = sample()
    save(dataset, db_url)
    assert save(dataset, db_url) == {name: 0 for name in CANONICAL_TYPES}
    assert stored_rows(db_url) == dataset.row_counts()
    assert_same(load(db_url), dataset)


def test_duplicate_rows_within_one_save_are_stored_once(db_url: str) -> None:
    edss = sample()["edss"]
    dataset = with_table(sample(), "edss", pa.concat_tables([edss, edss]))
    assert save(dataset, db_url)["edss"] == edss.num_rows
    assert load(db_url)["edss"].to_pylist() == edss.to_pylist()


def test_a_changed_lab_row_is_stored_as_a_new_row(db_url: str) -> None:
    dataset = sample()
    save(dataset, db_url)
    labs = dataset["labs"].to_pylist()
    labs[0]["value"] = 151.0
    changed = with_table(dataset, "labs", pa.Table.from_pylist(labs))
    assert save(changed, db_url) == {name: int(name == "labs") for name in CANONICAL_TYPES}
    loaded = load(db_url)["labs"].to_pylist()
    assert loaded == [*dataset["labs"].to_pylist(), labs[0]]


def test_a_changed_patient_is_updated_not_duplicated(db_url: str) -> None:
    dataset = sample()
    save(dataset, db_url)
    patients = dataset["patients"].to_pylist()
    patients[1]["ms_type"] = "SPMS"
    patients[1]["birth_date"] = "1975-06-14"
    changed = with_table(dataset, "patients", pa.Table.from_pylist(patients))
    assert save(changed, db_url) == {name: int(name == "patients") for name in CANONICAL_TYPES}
    assert load(db_url)["patients"].to_pylist() == patients


def test_the_last_row_of_a_patient_in_one_save_wins(db_url: str) -> None:
    first = {"patient_id": "P9", "sex": "F", "birth_date": "1970"}
    last = {"patient_id": "P9", "sex": "F", "birth_date": "1971"}
    dataset = Dataset({"patients": table("patients", [first, last])})
    assert save(dataset, db_url)["patients"] == 1
    assert load(db_url)["patients"]["birth_date"].to_pylist() == ["1971"]


def _null_patient_id(labs: pa.Table) -> pa.Table:
    """A row the database refuses (patient_id is NOT NULL): fails inside the INSERT."""
    rows = labs.to_pylist()
    rows[-1]["patient_id"] = None
    return pa.Table.from_pylist(rows, schema=labs.schema)


def _text_in_a_number_column(labs: pa.Table) -> pa.Table:
    """A table that is not canonical at all: fails before anything of it is written."""
    return labs.set_column(3, "value", pa.array(["high"] * labs.num_rows))


@pytest.mark.parametrize("break_labs", [_null_patient_id, _text_in_a_number_column])
def test_a_failed_save_leaves_the_database_unchanged(
    db_url: str, break_labs: Callable[[pa.Table], pa.Table]
) -> None:
    before = sample()
    save(before, db_url)
    # New rows in the tables saved before labs, then new lab rows that fail.
    more = Dataset(
        {
            "patients": table("patients", [{"patient_id": "P100", "sex": "F"}]),
            "treatments": table(
                "treatments",
                [{"patient_id": "P100", "drug": "ocrelizumab", "start_date": D(2020, 1, 1)}],
            ),
        }
    )
    new_labs = [{**row, "date": D(2021, 1, 1)} for row in before["labs"].to_pylist()]
    more.tables["labs"] = break_labs(table("labs", new_labs))
    with pytest.raises(StoreError, match="labs"):
        save(more, db_url)
    assert stored_rows(db_url) == before.row_counts()
    assert_same(load(db_url), before)


def test_a_failed_first_save_leaves_no_rows(db_url: str) -> None:
    broken = sample()
    broken.tables["labs"] = _null_patient_id(broken["labs"])
    with pytest.raises(StoreError):
        save(broken, db_url)
    assert_same(load(db_url), Dataset())


def test_migrations_create_exactly_the_model(db_url: str) -> None:
    assert save(Dataset(), db_url) == {name: 0 for name in CANONICAL_TYPES}
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert context.get_current_revision() == head
    finally:
        engine.dispose()
    assert_same(load(db_url), Dataset())


def test_nan_is_stored_as_null_and_negative_zero_as_zero(db_url: str) -> None:
    edss = pa.table(
        {"patient_id": ["P1", "P1"], "date": [D(2020, 1, 1), D(2020, 2, 1)], "score": [-0.0, None]}
    )
    labs = sample()["labs"].slice(0, 1).set_column(3, "value", pa.array([float("nan")]))
    save(Dataset({"edss": edss, "labs": labs}), db_url)
    loaded = load(db_url)
    assert [str(v) for v in loaded["edss"]["score"].to_pylist()] == ["0.0", "None"]
    assert loaded["labs"]["value"].to_pylist() == [None]


@pytest.mark.postgres
def test_a_plain_postgresql_url_uses_psycopg(pg_url: str) -> None:
    plain = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    save(sample(), plain)
    assert_same(load(plain), sample())


def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    url = "postgresql://clinic:s3cr3t-pw@127.0.0.1:1/dmtwatch"
    with pytest.raises(StoreError) as caught:
        save(sample(), url)
    message = str(caught.value)
    assert "postgresql://clinic:***@127.0.0.1:1/dmtwatch" in message
    assert "s3cr3t-pw" not in message


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("not a url", "not a database URL: 'not a url'"),
        ("mysql://clinic:s3cr3t-pw@db/clinic", "unsupported database mysql://clinic:***@db/clinic"),
        ("sqlite:////nonexistent-dir/clinic.db", "cannot open database sqlite:////nonexistent-dir"),
    ],
)
def test_bad_urls_are_store_errors(url: str, words: str) -> None:
    with pytest.raises(StoreError, match=re.escape(words)) as caught:
        save(sample(), url)
    assert "s3cr3t-pw" not in str(caught.value)


def test_loading_a_missing_sqlite_file_neither_creates_it_nor_returns_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(StoreError, match="no such database"):
        load(f"sqlite:///{path}")
    assert not path.exists()


def test_loading_a_database_never_imported_into_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).close()
    with pytest.raises(StoreError, match="holds no dmtwatch store"):
        load(f"sqlite:///{path}")


def test_row_keys_are_fixed_for_given_values() -> None:
    """Golden values: a change here would duplicate every row already stored."""
    encoded = [
        "4:P001|10:2014-06-01|9:platelets|5:150.0|~|6:10^9/L|5:150.0|5:400.0",
        "4:P001|10:2014-06-01|11:urine_blood|~|8:positive|~|~|~",
    ]
    expected = [hashlib.sha1(row.encode()).hexdigest() for row in encoded]
    assert expected == [
        "3ea4b7e918af788b6bd6e87c0daef6c0f97a7d58",
        "8c1b1809621f96e964928a5b3fdfb2b46e677be6",
    ]
    labs = sample()["labs"].slice(0, 2)
    assert row_keys(labs.select(key_columns("labs"))).to_pylist() == expected


def test_the_value_as_reported_is_outside_the_row_key(db_url: str) -> None:
    """The same result written another way (150 or 150.0 G/L) is stored once, as first given."""
    dataset = sample()
    save(dataset, db_url)
    labs = dataset["labs"].to_pylist()
    labs[0]["value_reported"], labs[0]["unit_reported"] = "150.0", "10^9/L"
    again = with_table(dataset, "labs", pa.Table.from_pylist(labs))
    assert save(again, db_url) == {name: 0 for name in CANONICAL_TYPES}
    assert_same(load(db_url), dataset)


def test_rows_stored_before_contract_1_1_get_their_value_as_reported(db_url: str) -> None:
    """Migration 0002 keeps the rows and their keys: importing them again stores no
    duplicate and fills in the value and unit as reported."""
    labs = sample()["labs"]
    old_columns = key_columns("labs")
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
            table = sa_table("labs", *(sa_column(c) for c in [*old_columns, ROW_KEY]))
            rows = labs.select(old_columns).append_column(
                ROW_KEY, row_keys(labs.select(old_columns))
            )
            connection.execute(insert(table), rows.to_pylist())
    finally:
        engine.dispose()
    migrated = load(db_url)["labs"]  # brought to head: the old rows, nothing reported
    assert migrated.select(old_columns).to_pylist() == labs.select(old_columns).to_pylist()
    assert migrated["value_reported"].null_count == migrated.num_rows
    reported = sum(r["value_reported"] is not None for r in labs.to_pylist())
    assert save(sample(), db_url)["labs"] == reported
    assert save(sample(), db_url)["labs"] == 0
    assert stored_rows(db_url)["labs"] == labs.num_rows
    assert_same(load(db_url), sample())


def test_row_keys_tell_null_empty_and_separators_apart() -> None:
    table = pa.table(
        {
            "a": pa.array([None, "", "None", "a|b", "a", "1:a"]),
            "b": pa.array(["", None, "", "", "b", None]),
        }
    )
    keys = row_keys(table).to_pylist()
    assert len(set(keys)) == len(keys)
    assert row_keys(table).to_pylist() == keys


# -- SQLite readers while an import writes (WAL) -------------------------------------------


def _dmtwatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dmtwatch", *args], capture_output=True, text=True, timeout=300
    )


def test_sqlite_store_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "clinic.db"
    save(sample(), f"sqlite:///{path}")
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with open_store(f"sqlite:///{path}", create=False) as engine, engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == SQLITE_BUSY_TIMEOUT_MS


def test_a_store_in_rollback_mode_is_switched_to_wal(tmp_path: Path) -> None:
    path = tmp_path / "clinic.db"
    save(sample(), f"sqlite:///{path}")
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode = DELETE")
    assert_same(load(f"sqlite:///{path}"), sample())
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_readers_see_the_last_import_while_a_write_is_held(tmp_path: Path) -> None:
    """`check --db` and `serve --db` (its PatientStore) read the committed store while
    another connection holds the write lock mid-transaction (in rollback-journal mode an
    EXCLUSIVE lock shuts every reader out: "database is locked")."""
    from dmtwatch.cds.store_source import PatientStore

    path = tmp_path / "clinic.db"
    url = f"sqlite:///{path}"
    data = Path(__file__).parent / "vignettes" / "relapse_without_mri"
    assert _dmtwatch("import", "--data", str(data), "--db", url).returncode == 0
    before = _dmtwatch("check", "--db", url, "--as-of", "2015-06-20", "--format", "json")
    assert before.returncode == 0, before.stderr
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute("DELETE FROM relapses")
        writer.execute("DELETE FROM patients")
        during = _dmtwatch("check", "--db", url, "--as-of", "2015-06-20", "--format", "json")
        assert during.returncode == 0, during.stderr
        assert during.stdout == before.stdout  # the last committed import, whole
        store = PatientStore(url)
        try:
            patient = load(url)["patients"]["patient_id"][0].as_py()
            assert store.dataset(patient)["patients"].num_rows == 1
        finally:
            store.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_check_db_keeps_working_while_an_import_runs_in_another_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    small, big = tmp_path / "small", tmp_path / "big"
    assert _dmtwatch("synth", "--patients", "5", "--out", str(small)).returncode == 0
    synth = _dmtwatch("synth", "--patients", "1000", "--seed", "2", "--out", str(big))
    assert synth.returncode == 0, synth.stderr
    assert _dmtwatch("import", "--data", str(small), "--db", url).returncode == 0
    importing = subprocess.Popen(
        [sys.executable, "-m", "dmtwatch", "import", "--data", str(big), "--db", url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        overlapped = 0
        while importing.poll() is None:
            proc = _dmtwatch("check", "--db", url, "--as-of", "2016-01-01", "--format", "json")
            assert proc.returncode == 0, proc.stderr
            assert "locked" not in proc.stderr
            overlapped += importing.poll() is None
        _, stderr = importing.communicate(timeout=300)
        assert importing.returncode == 0, stderr
    finally:
        if importing.poll() is None:
            importing.kill()
            importing.wait()
    assert overlapped, "the import ended before any check: make the clinic bigger"
    assert load(url)["patients"].num_rows >= 1000
