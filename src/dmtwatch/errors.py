"""One exception family: every error dmtwatch raises on purpose is a `DmtwatchError`.

A caller (a script, a notebook, the CLI) catches `DmtwatchError` to handle every
expected failure and lets anything else, a bug, surface as a traceback. The CLI maps
these classes to exit codes in one place (`dmtwatch.cli.EXIT_CODES`; the table is in
docs/contract.md), so each kind of failure exits the same way from every command:

    DmtwatchError           something expected went wrong (exit 1)
      UsageError            the command or call was given options it cannot use (exit 64)
        OutputPathError     an output path that cannot be used (a folder, under a file)
      InputError            the input cannot be used (exit 2)
        InputRejected       a clinic export refused as a whole, with every problem found
      StoreError            a database could not be opened, migrated, written or read
      NetworkError          a server could not be read (the FHIR client)
      OutputError           an output file could not be written

Modules keep their own subclasses where the name says more (`FhirClientError`,
`ReportsError`, `FaersError`, `SignalsError`, `TrustError`, ...); they are importable from
where they always were. This module imports nothing of dmtwatch's, so any module can
raise from it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dmtwatch.io.problems import Problem

__all__ = [
    "DmtwatchError",
    "InputError",
    "InputRejected",
    "NetworkError",
    "OutputError",
    "OutputPathError",
    "StoreError",
    "UsageError",
]


class DmtwatchError(Exception):
    """The root of every error dmtwatch raises on purpose; the message is one line that
    names where (a file, row and column; a URL without its password; an option)."""


class UsageError(DmtwatchError):
    """Options that cannot be used together or a value an option does not take: the
    command is wrong, not the data (so a script can tell the two apart)."""


class InputError(DmtwatchError):
    """The input cannot be used: a clinic export, a reports file, a FAERS quarter, a
    mapping file, or a request that the input cannot answer. Nothing was stored or written."""


class InputRejected(InputError):
    """A clinic export refused as a whole; `problems` lists every error found (not only
    the first), ordered by file, row and column. Nothing was stored."""

    problems: list[Problem]

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems, key=_order)
        super().__init__(self.summary())

    def summary(self) -> str:
        by_kind = Counter((p.file, p.column, p.reason.split("'")[0]) for p in self.problems)
        return f"input rejected: {len(self.problems)} problem(s) in {len(by_kind)} kind(s)"


def _order(p: Problem) -> tuple:
    return (p.file, p.row if p.row is not None else 0, p.column or "", p.reason)


class StoreError(DmtwatchError):
    """A database could not be opened, migrated, written or read; the message says which
    (and never holds the URL's password)."""


class NetworkError(DmtwatchError):
    """A server could not be read: refused by the outbound policy, unreachable, an HTTP
    error status or an answer that is not FHIR."""


class OutputError(DmtwatchError):
    """An output file could not be written; `usage` when the path itself is unusable
    (then it is an `OutputPathError`). A previous file at the path is unchanged."""

    usage: bool = False


class OutputPathError(OutputError, UsageError):
    """An `--out` path that cannot be used: it is a folder, or lies under a file."""

    usage = True
