"""Test set-up: compiled plans cached in a per-session folder (shared with the CLI
processes the tests start), and store fixtures: a fresh database per test on SQLite and
on the throwaway PostgreSQL.

`make test` runs pytest under scripts/with-postgres.sh, which exports
DMTWATCH_TEST_PG_URL; without it the PostgreSQL cases skip and say why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

PG_URL_VARIABLE = "DMTWATCH_TEST_PG_URL"


_OWN_CACHE: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """Keep compiled plans out of the user's cache; child processes inherit the folder."""
    if "DMTWATCH_CACHE_DIR" not in os.environ:
        import tempfile

        os.environ["DMTWATCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="dmtwatch-test-cache-")
        _OWN_CACHE.append(os.environ["DMTWATCH_CACHE_DIR"])


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    for folder in _OWN_CACHE:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An autocommit engine on the test server's maintenance database (CREATE DATABASE)."""
    url = os.environ.get(PG_URL_VARIABLE)
    if not url:
        pytest.skip(f"{PG_URL_VARIABLE} is not set: run under scripts/with-postgres.sh (make test)")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def pg_url(pg_admin: Engine) -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped after the test."""
    name = f"dmtwatch_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with pg_admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A database file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'clinic.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on each supported backend, each time on a fresh database."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
