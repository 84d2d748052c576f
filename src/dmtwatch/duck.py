"""The process's in-memory DuckDB databases, handed out as cursors.

Opening a DuckDB database costs ~17 ms on our 2-core machine, a cursor on an open one
~10 microseconds. A CDS Hooks call reads one patient's record and runs the engine over
it, which used to open four databases (reader, validator, engine, reduce): a tenth of
the call. A cursor is a connection
of its own: its temp tables, registered Arrow tables and results are private to it and
go when it is closed, so concurrent work shares nothing but the database.

Work on cursors keeps to TEMP tables (plain tables would be shared and outlive it).
Settings such as `enable_optimizer` are database-wide in DuckDB, so work that wants
another setting gets a database of its own rather than changing the shared one.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import warnings

import duckdb
import pyarrow as pa

# Up to this many rows an input is small: one patient's record in a CDS Hooks call, up to
# a few hundred patients. DuckDB's planning, not its execution, is then most of the cost.
SMALL_ROWS = 100_000

# Every user of these databases orders its results explicitly.
_CONFIG = {"preserve_insertion_order": False}

# `arrow` copies on purpose (its docstring says when); DuckDB's warning about the copy is
# for the unaware and is silenced for this module alone (pyproject.toml does the same
# for the tests, whose warning filters pytest resets).
warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning, __name__)

_lock = threading.Lock()
_databases: dict[tuple[int, bool], duckdb.DuckDBPyConnection] = {}


def cursor(*, optimize: bool = True) -> duckdb.DuckDBPyConnection:
    """A new connection to this process's in-memory database; close it when done.

    `optimize=False`: a database whose query optimizer is off, for inputs so small
    (one patient's record) that planning costs more than the optimizer saves.
    """
    key = (os.getpid(), optimize)  # a forked child opens its own
    with _lock:
        database = _databases.get(key)
        if database is None:
            config = {**_CONFIG, "enable_optimizer": optimize}
            database = _databases[key] = duckdb.connect(config=config)
    return database.cursor()


def arrow(con: duckdb.DuckDBPyConnection, sql: str, *, rows: int) -> pa.Table:
    """A query's result as Arrow, by the cheaper of DuckDB's two paths for `rows` input rows.

    The relation API (`con.sql`) binds a query once more before running it but hands the
    result over without a copy; `execute` plans it once and copies the rows. For a small
    input the copy is nothing and the extra bind is ~5 ms per complex query (a tenth of
    reading one patient's record); for millions of rows it is the other way round
    (reading 100k patients: 22.7 s by `sql`, 25.2 s by `execute`).
    """
    if rows <= SMALL_ROWS:
        return con.execute(sql).to_arrow_table()
    return con.sql(sql).to_arrow_table()


def sql_literal(value: object) -> str:
    """A value as a SQL literal, for the few places a value must be spelled into SQL text
    (a DDL setting, a compiled plan's constants): NULL, TRUE/FALSE, a number, a date, or
    a string in single quotes with its own quotes doubled. Everywhere else, parameters."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"
