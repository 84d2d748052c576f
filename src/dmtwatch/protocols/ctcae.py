"""The shared CTCAE grading table (`ctcae.yaml`): term, test, direction, grade, criterion,
unit, one row per term and grade, as admiral keeps its lab grading metadata.

Protocols name a term (`ctcae: Lymphocyte count decreased`); the loaded protocol holds the
grades resolved from here, so the engine, the audit and the docs read `rule.grades` as
before.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Literal

import yaml
from pydantic import Field, model_validator

from dmtwatch.model.lab_catalogue import lab_catalogue
from dmtwatch.protocols.parts import GradeCriterion, _Strict

CTCAE_FILE = "ctcae.yaml"


class CriterionRow(_Strict):
    term: str
    test: str
    direction: Literal["low", "high"]
    grade: int = Field(ge=1, le=5)
    criterion: GradeCriterion
    unit: str
    ctcae: str  # the criteria's own wording, for people

    @model_validator(mode="after")
    def _criterion_not_empty(self) -> CriterionRow:
        if not self.criterion.model_dump(exclude_none=True):
            raise ValueError(f"{self.term} grade {self.grade}: the criterion is empty")
        return self


class Term(_Strict):
    """One term's rows, gathered: what a protocol's grading rule takes from the table."""

    term: str
    test: str
    direction: Literal["low", "high"]
    unit: str
    grades: dict[int, GradeCriterion]


class CriteriaTable(_Strict):
    criteria: str
    version: str
    source_key: str  # the key protocols cite it by
    source: str
    rows: list[CriterionRow] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> CriteriaTable:
        tests = lab_catalogue().tests
        problems = []
        seen: dict[str, CriterionRow] = {}
        grades: set[tuple[str, int]] = set()
        for row in self.rows:
            if (row.term, row.grade) in grades:
                problems.append(f"{row.term}: grade {row.grade} is given twice")
            grades.add((row.term, row.grade))
            first = seen.setdefault(row.term, row)
            for column in ("test", "direction", "unit"):
                if getattr(row, column) != getattr(first, column):
                    problems.append(f"{row.term}: every row needs the same {column}")
            if row.test not in tests:
                problems.append(f"{row.term}: unknown test {row.test!r}")
            elif row.unit != tests[row.test].unit:
                problems.append(
                    f"{row.term}: unit {row.unit!r} is not the canonical unit of "
                    f"{row.test} ({tests[row.test].unit!r})"
                )
        if problems:
            raise ValueError("; ".join(dict.fromkeys(problems)))
        return self

    def terms(self) -> dict[str, Term]:
        out: dict[str, Term] = {}
        for row in self.rows:
            if row.term not in out:
                out[row.term] = Term(
                    term=row.term, test=row.test, direction=row.direction, unit=row.unit, grades={}
                )
            out[row.term].grades[row.grade] = row.criterion
        return out


@cache
def ctcae_table() -> CriteriaTable:
    text = files("dmtwatch.protocols").joinpath(CTCAE_FILE).read_text()
    return CriteriaTable.model_validate(yaml.safe_load(text))


@cache
def ctcae_terms() -> dict[str, Term]:
    return ctcae_table().terms()
