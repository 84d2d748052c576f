"""Saving a Dataset to the store and loading it back with exact types.

A save is one transaction: each table's rows go into a temporary staging table (COPY on
PostgreSQL, executemany elsewhere), then one INSERT ... SELECT ... ON CONFLICT moves the
new ones in, so the count of rows newly stored is that statement's row count.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    Column,
    Connection,
    Insert,
    MetaData,
    Table,
    and_,
    insert,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from dmtwatch.model.dataset import Dataset, arrow_schema
from dmtwatch.store.connection import open_store, reason, write
from dmtwatch.store.errors import StoreError, mask_url
from dmtwatch.store.rowkey import row_keys
from dmtwatch.store.schema import (
    ID,
    KEYED_BY_PATIENT,
    PATIENT_ID,
    ROW_KEY,
    TABLES,
    canonical_columns,
    key_columns,
    presentation_columns,
)

CHUNK = 10_000  # rows per executemany batch when staging without COPY
STAGE_PREFIX = "dmtwatch_stage_"


def save(dataset: Dataset, url: str) -> dict[str, int]:
    """Store every canonical table in one transaction (all or nothing).

    Returns rows newly stored per table: rows already present (same canonical values)
    count 0; for `patients`, a row counts when inserted or when its attributes changed;
    for `labs`, a row stored before contract v1.1 counts when it gets its value as
    reported.
    """
    with open_store(url, create=True) as engine:
        try:
            with write(engine) as connection:
                return {name: _save_table(connection, name, dataset[name]) for name in TABLES}
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot save to {mask_url(url)}: {reason(exc, url)}") from exc


def load(url: str) -> Dataset:
    """Every canonical table as stored, in one consistent snapshot.

    Rows come back in insertion order; patients sorted by patient_id.
    """
    with open_store(url, create=False) as engine:
        try:
            with engine.connect() as connection:
                if connection.dialect.name == "postgresql":
                    connection = connection.execution_options(
                        isolation_level="REPEATABLE READ", postgresql_readonly=True
                    )
                with connection.begin():
                    return Dataset({name: _load_table(connection, name) for name in TABLES})
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot load from {mask_url(url)}: {reason(exc, url)}") from exc


def _prepare(name: str, table: pa.Table) -> pa.Table:
    """Canonical columns with exact types, floats normalised, plus row_key; deduplicated."""
    schema = arrow_schema(name)
    try:
        table = table.select(schema.names).cast(schema).combine_chunks()
    except (KeyError, pa.ArrowException) as exc:
        raise StoreError(f"table {name!r} does not match its canonical columns: {exc}") from exc
    for index, field in enumerate(schema):
        if pa.types.is_floating(field.type):
            # NaN is no value (SQLite would store it as NULL); -0.0 would not round-trip.
            column = table.column(index)
            clean = pc.if_else(pc.is_nan(column), None, pc.add(column, 0.0))
            table = table.set_column(index, field, clean)
    table = table.append_column(ROW_KEY, row_keys(table.select(key_columns(name))))
    if name == KEYED_BY_PATIENT:
        return _unique(table, PATIENT_ID, keep="max")  # the last row of a patient wins
    return _unique(table, ROW_KEY, keep="min")


def _unique(table: pa.Table, key: str, keep: str) -> pa.Table:
    """One row per key value, keeping the first or last occurrence, in input order."""
    if pc.count_distinct(table[key]).as_py() == table.num_rows:
        return table
    positions = pa.table({"key": table[key], "row": pa.array(range(table.num_rows), pa.int64())})
    chosen = positions.group_by("key", use_threads=False).aggregate([("row", keep)])
    rows = chosen[f"row_{keep}"]
    return table.take(pc.take(rows, pc.sort_indices(rows)))


def _stage(connection: Connection, name: str) -> Table:
    """A temporary table shaped like `name` (canonical columns and row_key, no constraints)."""
    target = TABLES[name]
    columns = [Column(c.name, c.type) for c in target.columns if c.name != ID]
    stage = Table(f"{STAGE_PREFIX}{name}", MetaData(), *columns, prefixes=["TEMPORARY"])
    stage.create(connection)
    return stage


def _fill(connection: Connection, stage: Table, table: pa.Table) -> None:
    names = [c.name for c in stage.columns]
    if connection.dialect.driver == "psycopg":
        quote = connection.dialect.identifier_preparer.quote
        copy_sql = f"COPY {quote(stage.name)} ({', '.join(map(quote, names))}) FROM STDIN"
        columns = [table.column(n).to_pylist() for n in names]
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:  # type: ignore[union-attr]
            for row in zip(*columns, strict=True):
                copy.write_row(row)
        return
    for batch in table.select(names).to_batches(max_chunksize=CHUNK):
        connection.execute(insert(stage), batch.to_pylist())


def _merge(connection: Connection, name: str, stage: Table) -> Insert:
    """INSERT the staged rows that are new; patients upserted when their row_key changed."""
    target = TABLES[name]
    names = [*canonical_columns(name), ROW_KEY]
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    # SQLite needs a WHERE before ON CONFLICT to parse INSERT ... SELECT ... ON CONFLICT.
    statement = dialect_insert(target).from_select(
        names, select(*(stage.c[n] for n in names)).where(true())
    )
    if name == KEYED_BY_PATIENT:
        return statement.on_conflict_do_update(
            index_elements=[PATIENT_ID],
            set_={n: statement.excluded[n] for n in names if n != PATIENT_ID},
            where=target.c[ROW_KEY] != statement.excluded[ROW_KEY],
        )
    shown = presentation_columns(name)
    if shown:
        # A row stored before contract v1.1 has no value as reported: the same row
        # imported again fills it in (and counts); a row that has one keeps it.
        return statement.on_conflict_do_update(
            index_elements=[ROW_KEY],
            set_={n: statement.excluded[n] for n in shown},
            where=and_(
                *(target.c[n].is_(None) for n in shown),
                or_(*(statement.excluded[n].is_not(None) for n in shown)),
            ),
        )
    return statement.on_conflict_do_nothing(index_elements=[ROW_KEY])


def _save_table(connection: Connection, name: str, table: pa.Table) -> int:
    if table.num_rows == 0:
        return 0
    prepared = _prepare(name, table)
    stage = _stage(connection, name)
    _fill(connection, stage, prepared)
    merge = _merge(connection, name, stage)
    # rowcount of an INSERT is only kept for us when asked (psycopg resets it on close).
    stored = connection.execute(merge, execution_options={"preserve_rowcount": True}).rowcount
    stage.drop(connection)
    return stored


def _load_table(connection: Connection, name: str) -> pa.Table:
    target = TABLES[name]
    schema = arrow_schema(name)
    order = target.c[PATIENT_ID] if name == KEYED_BY_PATIENT else target.c[ID]
    rows = connection.execute(select(*(target.c[n] for n in schema.names)).order_by(order)).all()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema.names]
    table = pa.table(
        [pa.array(values, field.type) for values, field in zip(columns, schema, strict=True)],
        schema=schema,
    )
    if name == KEYED_BY_PATIENT:  # byte order, not the database collation's
        table = table.sort_by(PATIENT_ID)
    return table
