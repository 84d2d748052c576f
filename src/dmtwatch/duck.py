"""The process's in-memory DuckDB databases, handed out as cursors.

Opening a DuckDB database costs ~17 ms on our 2-core machine, a cursor on an open one
~10 microseconds. A CDS Hooks call reads one patient's record and runs the engine over
it, which used to open three databases: a tenth of the call. A cursor is a connection
of its own: its temp tables, registered Arrow tables and results are private to it and
go when it is closed, so concurrent work shares nothing but the database.

Work on cursors keeps to TEMP tables (plain tables would be shared and outlive it).
Settings such as `enable_optimizer` are database-wide in DuckDB, so work that wants
another setting gets a database of its own rather than changing the shared one.
"""

from __future__ import annotations

import os
import threading

import duckdb

# Every user of these databases orders its results explicitly.
_CONFIG = {"preserve_insertion_order": False}

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
