"""The shape of a protocol file, checked by pydantic when it is loaded.

A protocol holds clinical content only: numbers, windows, wording, citations. The engine
knows a handful of rule kinds (schedule, grading, flags, relapse imaging, imaging
findings, infusion proximity, exposure flags) and interprets whatever the file says.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dmtwatch.model.lab_catalogue import lab_catalogue
from dmtwatch.model.tables import DRUGS, MRI_REGIONS

Severity = Literal["urgent", "high", "routine", "info"]
SEVERITY_ORDER: dict[str, int] = {"urgent": 0, "high": 1, "routine": 2, "info": 3}
Limit = Literal["above_ref_high", "below_ref_low"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Rule(_Strict):
    code: str
    title: str
    detail: str
    action: str
    source: list[str] = Field(min_length=1)


class Therapy(_Strict):
    drug: str
    episode_gap_days: int = Field(ge=1)
    open_end: Literal["single_day", "ongoing"]
    clock_starts: Literal["episode_start", "episode_end"]
    monitoring_days_after_end: int = Field(ge=0)
    monitoring_note: str  # template: {monitoring_ends} is the last monitored day
    source: list[str] = Field(min_length=1)


class ScheduleItem(_Strict):
    id: str
    name: str
    tests: list[str] = Field(min_length=1)
    require: Literal["all", "any"]
    baseline_days: int | None = Field(default=None, ge=0)
    interval_days: int = Field(ge=1)
    grace_days: int = Field(ge=0)
    escalate_after_days: int = Field(ge=0)
    why: str
    source: list[str] = Field(min_length=1)


class GradeCriterion(_Strict):
    """A grade holds when any listed comparison holds (values in the canonical unit)."""

    below: float | None = None
    below_lln: float | None = None
    above_uln: float | None = None
    above_baseline: float | None = None
    above_abnormal_baseline: float | None = None


class Grading(_Rule):
    test: str
    term: str
    direction: Literal["low", "high"]
    grades: dict[int, GradeCriterion]
    severity: dict[int, Severity]

    @model_validator(mode="after")
    def _grades_complete(self) -> Grading:
        if sorted(self.grades) != sorted(self.severity):
            raise ValueError(f"{self.code}/{self.test}: every grade needs a severity")
        return self


class Companion(_Strict):
    test: str
    within_days: int = Field(ge=0)
    excludes: Limit | None = None
    escalates: Limit


class Flag(_Rule):
    test: str
    when: Limit
    companion: Companion | None = None
    severity: Severity
    escalated_severity: Severity | None = None


class RelapseImaging(_Rule):
    confirmed_only: bool
    regions: list[Literal[MRI_REGIONS]]  # type: ignore[valid-type]
    contrast: bool
    within_days: int = Field(ge=0)
    severity: Severity
    late_severity: Severity


class ImagingFinding(_Rule):
    column: Literal["ring_enhancing", "gd_enhancing", "new_t2"]
    severity: Severity
    rescued_severity: Severity
    receded_severity: Severity
    rescue_drugs: list[str]


class InfusionProximity(_Rule):
    events: list[Literal["relapses"]]
    days_after_infusion: int = Field(ge=0)
    severity: Severity


class ExposureFlag(_Rule):
    test: str
    above: float
    min_exposure_days: int = Field(ge=0)
    severity: Severity


class Protocol(_Strict):
    id: str
    title: str
    version: str
    therapy: Therapy
    schedule: list[ScheduleItem] = []
    grading: list[Grading] = []
    flags: list[Flag] = []
    relapse_imaging: list[RelapseImaging] = []
    imaging_findings: list[ImagingFinding] = []
    infusion_proximity: list[InfusionProximity] = []
    exposure_flags: list[ExposureFlag] = []
    repopulation_window_days: tuple[int, int] | None = None
    repopulation_source: list[str] = []
    sources: dict[str, str]

    @model_validator(mode="after")
    def _references_resolve(self) -> Protocol:
        known_tests = set(lab_catalogue().tests) | {f"mri_{r}" for r in MRI_REGIONS}
        problems = []
        cited: list[str] = list(self.therapy.source) + list(self.repopulation_source)
        if self.therapy.drug not in DRUGS:
            problems.append(f"unknown drug {self.therapy.drug!r}")
        for item in self.schedule:
            cited += item.source
            problems += [
                f"schedule {item.id}: unknown test {t!r}"
                for t in item.tests
                if t not in known_tests
            ]
        for rule in self.rules():
            cited += rule.source
            for test in _tests_of(rule):
                if test not in known_tests:
                    problems.append(f"{rule.code}: unknown test {test!r}")
        for drug in (d for r in self.imaging_findings for d in r.rescue_drugs):
            if drug not in DRUGS:
                problems.append(f"unknown rescue drug {drug!r}")
        problems += [
            f"source {key!r} is cited but not defined" for key in cited if key not in self.sources
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def rules(self) -> list[_Rule]:
        return [
            *self.grading,
            *self.flags,
            *self.relapse_imaging,
            *self.imaging_findings,
            *self.infusion_proximity,
            *self.exposure_flags,
        ]

    def cite(self, keys: list[str]) -> str:
        return "; ".join(self.sources[k] for k in keys)


def _tests_of(rule: _Rule) -> list[str]:
    tests = [getattr(rule, "test", None)]
    companion = getattr(rule, "companion", None)
    if companion is not None:
        tests.append(companion.test)
    return [t for t in tests if t]


def protocol_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml")
        for p in files("dmtwatch.protocols").iterdir()
        if p.name.endswith(".yaml")
    )


@cache
def load_protocol(name: str) -> Protocol:
    text = files("dmtwatch.protocols").joinpath(f"{name}.yaml").read_text()
    return Protocol.model_validate(yaml.safe_load(text))


def load_protocols() -> list[Protocol]:
    return [load_protocol(n) for n in protocol_names()]
