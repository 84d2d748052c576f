"""Problems found in an input: where (file, row, column), the value, and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# defined with the exception family (dmtwatch.errors), importable from here as before
from dmtwatch.errors import InputRejected as InputRejected


@dataclass(frozen=True, order=True)
class Problem:
    """One problem, located as a spreadsheet shows it (header = row 1)."""

    file: str
    row: int | None
    column: str | None
    value: str | None
    reason: str
    level: Literal["error", "warning"] = "error"
    # what `column` names: a file's column, or an element of a FHIR resource (`file` is
    # then the resource, e.g. "Observation/abc")
    place: Literal["column", "element"] = "column"

    def __str__(self) -> str:
        where = shown(self.file, LOCATION_SHOWN)  # a real path is never cut
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f", {self.place} {self.column}"
        what = f"'{shown(self.value)}' {self.reason}" if self.value is not None else self.reason
        return f"{where}: {what}"


def shown(value: str, limit: int | None = None) -> str:
    """A value as a message shows it: at most `limit` (SHOWN) characters, control
    characters escaped."""
    limit = SHOWN if limit is None else limit
    return escaped(value[:limit] + "..." if len(value) > limit else value)


def escaped(text: str) -> str:
    """Control characters (a NUL, an escape sequence that would drive the terminal)
    escaped, everything else as given."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


SHOWN = 200  # characters of a value a message shows
# characters of a location (a file path, or a FHIR resource id, which the input names):
# far above any real path, so that one is shown whole, and a hostile id still is not
LOCATION_SHOWN = 500


def element_problem(
    where: str,
    element: str | None,
    value: str | None,
    reason: str,
    level: Literal["error", "warning"] = "error",
) -> Problem:
    """A problem in a FHIR resource (or file): `where` is e.g. "Observation/abc"."""
    return Problem(where, None, element, value, reason, level, place="element")
