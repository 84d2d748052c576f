"""Opening a store: parse the URL, create the engine, bring the schema to head with Alembic.

Only SQLite and PostgreSQL (psycopg 3) are supported; a bare `postgresql://` URL would
make SQLAlchemy look for psycopg2, so it is pointed at psycopg here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from dmtwatch.store.errors import StoreError, mask_url, scrub

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"
DIALECTS = ("sqlite", "postgresql")
PG_CONNECT_TIMEOUT = 10  # seconds; libpq would otherwise wait forever on a silent host
_MIGRATION_LOCK = 0x646D7477  # pg_advisory_xact_lock key: concurrent imports migrate once
_BEGIN = "dmtwatch_sqlite_begin"  # execution option: DEFERRED (read) or IMMEDIATE (write)
SQLITE_BUSY_TIMEOUT_MS = 30_000  # a writer waits this long for another writer's lock


def reason(exc: BaseException, url: str) -> str:
    """The driver's own words for a failure, without SQLAlchemy's SQL dump or the password."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    words = " ".join(str(cause).split()) or type(cause).__name__
    return scrub(words, url)


def parse_url(url: str) -> URL:
    """An SQLAlchemy URL for a supported backend, or StoreError."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {mask_url(url)!r} ({reason(exc, url)})") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in DIALECTS:
        raise StoreError(
            f"unsupported database {mask_url(url)}: use sqlite:///FILE or postgresql://..."
        )
    return parsed


def alembic_config() -> Config:
    """Alembic configured in code: the migrations ship inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _sqlite_transactions(engine: Engine) -> None:
    """Make pysqlite emit BEGIN itself so DDL and every statement join the transaction.

    The database runs in WAL mode: readers (`check --db`, `serve --db`) see the last
    committed import while another import writes, instead of "database is locked"; a
    killed import still leaves the store as it was (its frames are never committed).
    WAL is a property of the file: the first connection that can switch it does (one
    that cannot, because another holds a lock in the old mode, goes on without waiting).
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout = 0")
            # locked in rollback mode by another connection, or read-only: mode unchanged
            with suppress(sqlite3.Error):
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _sqlite_file_missing(url: URL) -> bool:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return False
    return not Path(database).exists()


def _engine(url: str, parsed: URL) -> Engine:
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT
    try:
        engine = create_engine(parsed, connect_args=connect_args)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"cannot use database {mask_url(url)}: {reason(exc, url)}") from exc
    if engine.dialect.name == "sqlite":
        _sqlite_transactions(engine)
    return engine


def _migrate(engine: Engine, url: str, create: bool) -> None:
    with write(engine) if create else engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        if not create and not inspect(connection).has_table(VERSION_TABLE):
            raise StoreError(
                f"{mask_url(url)} holds no dmtwatch store: fill it with"
                " `dmtwatch import --db URL` first"
            )
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """One transaction for writing; on SQLite it takes the write lock up front."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection = connection.execution_options(**{_BEGIN: "IMMEDIATE"})
        with connection.begin():
            yield connection


@contextmanager
def open_store(url: str, *, create: bool) -> Iterator[Engine]:
    """An engine whose schema is at head; `create=False` refuses a database never imported into.

    The engine is disposed on exit, so no connection outlives the call.
    """
    parsed = parse_url(url)
    if not create and parsed.get_backend_name() == "sqlite" and _sqlite_file_missing(parsed):
        raise StoreError(f"no such database: {mask_url(url)} (the file does not exist)")
    engine = _engine(url, parsed)
    try:
        try:
            _migrate(engine, url, create)
        except (SQLAlchemyError, CommandError, ImportError, OSError) as exc:
            raise StoreError(f"cannot open database {mask_url(url)}: {reason(exc, url)}") from exc
        yield engine
    finally:
        engine.dispose()
