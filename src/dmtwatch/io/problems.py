"""Problems found in an input: where (file, row, column), the value, and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, order=True)
class Problem:
    """One problem, located as a spreadsheet shows it (header = row 1)."""

    file: str
    row: int | None
    column: str | None
    value: str | None
    reason: str
    level: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f", column {self.column}"
        what = f"'{self.value}' {self.reason}" if self.value is not None else self.reason
        return f"{where}: {what}"


class InputRejected(Exception):
    """The input was refused as a whole; nothing was stored."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=_order)
        super().__init__(self.summary())

    def summary(self) -> str:
        by_kind = Counter((p.file, p.column, p.reason.split("'")[0]) for p in self.problems)
        return f"input rejected: {len(self.problems)} problem(s) in {len(by_kind)} kind(s)"


def _order(p: Problem) -> tuple:
    return (p.file, p.row if p.row is not None else 0, p.column or "", p.reason)
