"""The lab test catalogue (`lab_tests.yaml`): names, LOINC codes, units, default limits."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import yaml
from pydantic import BaseModel, ConfigDict, Field


class LabTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    loinc: list[str] = Field(default_factory=list)
    unit: str | None = None
    units: dict[str, float] = Field(default_factory=dict)
    unit_optional: bool = False
    qualitative: list[str] | None = None
    abnormal_from: str | None = None
    ref_low: float | None = None
    ref_high: float | None = None
    # upper limits for the listed sexes (patients.sex); other sexes get `ref_high`
    ref_high_by_sex: dict[str, float] = Field(default_factory=dict)
    source: str

    @property
    def is_qualitative(self) -> bool:
        return self.qualitative is not None


def normalise_unit(unit: str) -> str:
    """The form unit spellings are compared in: no case, no spaces, micro sign as 'u'."""
    return unit.strip().replace("µ", "u").replace("μ", "u").lower()


class LabCatalogue(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tests: dict[str, LabTest]

    def code_to_test(self) -> dict[str, str]:
        """Every accepted spelling of a test (short name or LOINC) -> short name."""
        out = {name.lower(): name for name in self.tests}
        for name, t in self.tests.items():
            out.update({code.lower(): name for code in t.loinc})
        return out

    def unit_factors(self) -> list[tuple[str, str, float]]:
        """(test, normalised unit spelling, factor to the canonical unit) rows."""
        rows = []
        for name, t in self.tests.items():
            rows += [(name, normalise_unit(u), f) for u, f in t.units.items()]
            if t.unit_optional:
                rows.append((name, "", 1.0))
        return rows


@cache
def lab_catalogue() -> LabCatalogue:
    text = files("dmtwatch.model").joinpath("lab_tests.yaml").read_text()
    return LabCatalogue.model_validate(yaml.safe_load(text))
