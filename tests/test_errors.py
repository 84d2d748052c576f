"""One exception family, mapped to exit codes in one place (docs/contract.md, v1.2)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dmtwatch
from dmtwatch.cli import EXIT_CODES, app, exit_code
from dmtwatch.errors import (
    DmtwatchError,
    InputError,
    InputRejected,
    NetworkError,
    OutputError,
    OutputPathError,
    StoreError,
    UsageError,
)

VIGNETTES = Path(__file__).parent / "vignettes"
DATA = str(VIGNETTES / "relapse_without_mri")

# importing these runs something: the CLI itself, Alembic's migration environment
NOT_IMPORTED = ("dmtwatch.__main__", "dmtwatch.store.migrations")


def _modules() -> list[str]:
    names = [dmtwatch.__name__]
    for info in pkgutil.walk_packages(dmtwatch.__path__, prefix="dmtwatch."):
        if not info.name.startswith(NOT_IMPORTED):
            names.append(info.name)
    return names


def test_every_exception_class_of_the_package_is_in_the_family() -> None:
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException):
                found.append(cls)
    outside = [
        f"{c.__module__}.{c.__qualname__}" for c in found if not issubclass(c, DmtwatchError)
    ]
    assert not outside, f"not a DmtwatchError: {outside}"
    assert len(found) >= 15  # the walk did find the package's classes


def test_old_import_paths_still_work() -> None:
    from dmtwatch.cds.client_auth import TrustError
    from dmtwatch.fhir.client import FhirClientError
    from dmtwatch.io import InputRejected as FromIo
    from dmtwatch.pv.faers import FaersError
    from dmtwatch.pv.reports import ReportsError
    from dmtwatch.pv.signals import SignalsError
    from dmtwatch.render.output import OutputError as FromOutput
    from dmtwatch.store import StoreError as FromStore

    assert FromIo is InputRejected and FromStore is StoreError and FromOutput is OutputError
    assert issubclass(FhirClientError, NetworkError)
    assert all(issubclass(c, InputError) for c in (FaersError, ReportsError, SignalsError))
    assert issubclass(TrustError, DmtwatchError)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("x"), 64),
        (OutputPathError("x"), 64),
        (InputRejected([]), 2),
        (InputError("x"), 2),
        (StoreError("x"), 1),
        (NetworkError("x"), 1),
        (OutputError("x"), 1),
        (DmtwatchError("x"), 1),
    ],
)
def test_the_one_mapping(error: DmtwatchError, code: int) -> None:
    assert exit_code(error) == code
    assert EXIT_CODES[-1] == (DmtwatchError, 1)  # the last entry catches the whole family


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


def test_exit_0_when_it_worked() -> None:
    result = _run("check", "--data", DATA, "--as-of", "2015-06-20", "--format", "json")
    assert result.exit_code == 0, result.output


def test_exit_1_when_a_store_cannot_be_read(tmp_path: Path) -> None:
    result = _run("check", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert result.exit_code == 1
    assert _one_error_line(result).startswith("error: ")


def test_exit_1_when_a_fhir_server_cannot_be_read() -> None:
    # port 9 (discard) on loopback: refused at once, no traffic leaves the machine
    result = _run("check", "--fhir-url", "http://127.0.0.1:9/fhir")
    assert result.exit_code == 1
    assert _one_error_line(result).startswith("error: ")


def test_exit_2_when_the_input_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "patients.csv").write_text("patient_id,sex\nP1,Q\n")
    result = _run("check", "--data", str(tmp_path))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "input rejected: 1 problem(s) in 1 kind(s): nothing was read"
    assert lines[1].startswith("  patients.csv row 2, column sex: 'Q'")


def test_exit_2_when_reports_cannot_be_used(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("report_id,drug\n1,A\n")
    result = _run("signals", "--reports", str(bad))
    assert result.exit_code == 2
    assert "bad.csv" in _one_error_line(result)


def test_exit_64_for_our_usage_errors(tmp_path: Path) -> None:
    result = _run("check", "--data", DATA, "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert result.exit_code == 64
    line = _one_error_line(result)
    assert line == "error: give exactly one of --data, --db, --fhir or --fhir-url"
    result = _run("audit", "--data", DATA, "--where", "colour=blue")
    assert result.exit_code == 64
    assert _one_error_line(result).startswith("error: cannot select a subgroup by ['colour']")


def test_exit_64_for_clicks_usage_errors() -> None:
    assert _run("check", "--no-such-option").exit_code == 64
    assert _run("no-such-command").exit_code == 64
    assert _run("check", "--data", DATA, "--as-of", "2015-02-30").exit_code == 64


def test_exit_64_for_an_unusable_out_path(tmp_path: Path) -> None:
    result = _run("check", "--data", DATA, "--as-of", "2015-06-20", "--out", str(tmp_path))
    assert result.exit_code == 64
    assert _one_error_line(result) == f"error: cannot write {tmp_path}: it is a folder"
