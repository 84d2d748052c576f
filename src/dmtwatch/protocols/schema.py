"""The shape of a protocol file, checked by pydantic when it is loaded.

A protocol holds clinical content only: numbers, windows, wording, citations. The engine
knows a handful of rule kinds (schedule, grading, flags, relapse imaging, imaging
findings, infusion proximity, result validity, risk strata) and interprets whatever the
file says.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dmtwatch.model.lab_catalogue import lab_catalogue
from dmtwatch.model.tables import AE_CATEGORIES, DRUGS, MRI_REGIONS

Severity = Literal["urgent", "high", "routine", "info"]
SEVERITY_ORDER: dict[str, int] = {"urgent": 0, "high": 1, "routine": 2, "info": 3}
Limit = Literal["above_ref_high", "below_ref_low"]
# What raises a lab flag: beyond a limit of the result's range, or, for a qualitative
# test, an answer at or past the catalogue's `abnormal_from` (e.g. urine blood "trace").
Trigger = Literal["above_ref_high", "below_ref_low", "positive"]


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
    # A row that records one dose (end_date empty or the same day) covers the dosing
    # interval after it: exposure runs to the last dose plus this many days.
    dose_covers_days: int | None = Field(default=None, ge=1)
    source: list[str] = Field(min_length=1)


class ScheduleItem(_Strict):
    id: str
    name: str
    tests: list[str] = Field(min_length=1)
    require: Literal["all", "any"]
    baseline_days: int | None = Field(default=None, ge=0)
    # None: a baseline only (e.g. the urine protein:creatinine ratio before course 1)
    interval_days: int | None = Field(default=None, ge=1)
    grace_days: int = Field(ge=0)
    escalate_after_days: int = Field(ge=0)
    # The therapy's monitoring tail, unless this item stops earlier (e.g. JCV retests
    # end with natalizumab while PML vigilance by MRI goes on).
    days_after_end: int | None = Field(default=None, ge=0)
    # A shorter interval for patients in a risk stratum of the protocol (stratum id: days).
    interval_by_risk: dict[str, int] = {}
    # A missing baseline is worth acting on, not merely noting.
    baseline_severity: Severity = "routine"
    # The baseline is due before the first episode only, not before every one.
    baseline_first_episode_only: bool = False
    why: str
    source: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _something_due(self) -> ScheduleItem:
        if self.interval_days is None and self.baseline_days is None:
            raise ValueError(f"schedule {self.id}: needs interval_days, baseline_days or both")
        return self


class GradeCriterion(_Strict):
    """A grade holds when any listed comparison holds (values in the canonical unit)."""

    below: float | None = None
    below_lln: float | None = None
    above_uln: float | None = None
    above_baseline: float | None = None
    above_abnormal_baseline: float | None = None
    at_least_abnormal_baseline: float | None = None  # inclusive (ALT/AST grade 1: 1.5 x)


class Grading(_Rule):
    """Grades of a test by a term of the shared CTCAE table (`ctcae`): the loaded rule holds
    the term's grades, direction and wording resolved from `ctcae.yaml`. A protocol file
    never copies them; a clinic changes a threshold with an overlay (`grades` then differs
    from the table's, citing LOCAL-POLICY)."""

    test: str
    ctcae: str | None = None  # a term of ctcae.yaml
    term: str
    direction: Literal["low", "high"]
    grades: dict[int, GradeCriterion]
    severity: dict[int, Severity]

    @model_validator(mode="before")
    @classmethod
    def _from_table(cls, data: object) -> object:
        if not isinstance(data, dict) or data.get("ctcae") is None:
            return data
        from dmtwatch.protocols.ctcae import ctcae_terms

        name = data["ctcae"]
        term = ctcae_terms().get(name) if isinstance(name, str) else None
        if term is None:
            raise ValueError(
                f"unknown CTCAE term {name!r} (ctcae.yaml has: {', '.join(ctcae_terms())})"
            )
        if data.get("test") is not None and data["test"] != term.test:
            raise ValueError(f"CTCAE term {name!r} grades test {term.test!r}, not {data['test']!r}")
        for key in ("term", "direction"):
            if data.get(key) is not None and data[key] != getattr(term, key):
                raise ValueError(f"{key} {data[key]!r} differs from CTCAE's {getattr(term, key)!r}")
        resolved = {"test": term.test, "term": term.term, "direction": term.direction}
        resolved["grades"] = {g: c.model_dump(exclude_none=True) for g, c in term.grades.items()}
        return {**resolved, **{k: v for k, v in data.items() if v is not None}}

    @model_validator(mode="after")
    def _grades_complete(self) -> Grading:
        if sorted(self.grades) != sorted(self.severity):
            raise ValueError(f"{self.code}/{self.test}: every grade needs a severity")
        return self


class Companion(_Strict):
    """Another test near the flagged result: it can exclude the finding, be required for
    it (a discordant pair), or escalate it (beyond its limit, or a rise from baseline)."""

    test: str
    within_days: int = Field(ge=0)
    # "measured_after": a companion result on the same day or within the window after it
    # excludes (microscopy of a later sample; one from before did not examine this one)
    excludes: Limit | Literal["measured_after"] | None = None
    requires: Limit | None = None
    escalates: Limit | None = None
    # escalates too at or above this multiple of the patient's baseline (the latest
    # result on or before the start of the latest course)
    escalates_at_baseline_times: float | None = Field(default=None, gt=0)


class Flag(_Rule):
    test: str
    when: Trigger
    # also raised at or above this value (canonical unit), whatever the lab's range
    at_least: float | None = None
    companion: Companion | None = None
    severity: Severity
    escalated_severity: Severity | None = None


class Ageing(_Strict):
    """An alarm about an event long past is still shown, at a lower severity."""

    after_days: int = Field(ge=1)
    severity: Severity


class RelapseImaging(_Rule):
    confirmed_only: bool
    regions: list[Literal[MRI_REGIONS]]  # type: ignore[valid-type]
    contrast: bool
    within_days: int = Field(ge=0)
    severity: Severity
    late_severity: Severity
    ageing: Ageing | None = None


class ImagingFinding(_Rule):
    column: Literal["ring_enhancing", "gd_enhancing", "new_t2"]
    severity: Severity
    rescued_severity: Severity
    receded_severity: Severity
    rescue_drugs: list[str]


class InfusionProximity(_Rule):
    # events read: relapses (any apparent relapse), and adverse events of these categories
    relapses: bool
    adverse_event_categories: list[Literal[AE_CATEGORIES]] = []  # type: ignore[valid-type]
    days_after_infusion: int = Field(ge=0)
    severity: Severity
    ageing: Ageing | None = None


class ResultValidity(_Rule):
    """Results of `test` drawn too soon after a treatment are not valid (e.g. an anti-JCV
    index after plasma exchange or IVIg): rules skip them and a finding asks for a repeat."""

    test: str
    invalid_after: dict[str, int]  # drug -> days after its last day that a result is not valid
    severity: Severity


class RiskStratum(_Strict):
    """One row of a risk table: every stated condition must hold; the first row that
    matches is the patient's stratum."""

    id: str
    label: str
    positive: bool | None = None  # the result above the lab's limit (antibody detected)
    value_above: float | None = None
    exposure_above_days: int | None = Field(default=None, ge=0)
    prior_drugs: bool | None = None  # any of the rule's `prior_drugs` recorded
    severity: Severity | None = None  # None: no finding for this stratum


class RiskStratification(_Rule):
    test: str
    prior_drugs: list[str] = []
    strata: list[RiskStratum] = Field(min_length=1)


class Wording(_Strict):
    """A finding's words where the engine writes the rule (the schedule's findings)."""

    title: str
    detail: str
    action: str


class ScheduleWording(_Strict):
    overdue: Wording
    baseline: Wording


class Phrases(_Strict):
    """The pieces of text the engine puts into a finding's template fields: what a
    missing value reads as, a scan's state, a companion result's state... Kept here so
    that no clinical English lives in engine code and a clinic overlay can reword it.
    Each is a template over the fields named in its comment."""

    missing: str  # a field with no value
    no_window: str  # no repopulation window defined (for {repopulation})
    none_recorded: str  # no prior drugs
    no_rescue: str  # no rescue therapy after the scan
    scan_missing: str  # CNS-MRI without any scan since onset
    scan_late: str  # {scan_date} {delay} {within_days}
    follow_up_missing: str
    follow_up: str  # {scan_date} {count}
    companion_not_measured: str  # {within_days}
    companion_below: str
    companion_above: str
    companion_within: str
    companion_risen: str  # {times} {baseline}
    evidence_relapse: str  # evidence item of a relapse
    evidence_episode_start: str  # {drug}
    evidence_episode_end: str  # {drug}


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
    result_validity: list[ResultValidity] = []
    risk_strata: list[RiskStratification] = []
    repopulation_window_days: tuple[int, int] | None = None
    # how a day after the last infusion reads against that window: before / inside / after
    repopulation_wording: dict[Literal["before", "inside", "after"], str] = {}
    repopulation_source: list[str] = []
    schedule_wording: ScheduleWording | None = None  # needed with a schedule
    phrases: Phrases
    sources: dict[str, str]

    @model_validator(mode="before")
    @classmethod
    def _shared_wording(cls, data: object) -> object:
        """`schedule_wording` and `phrases` from protocols/wording.yaml, key by key, where
        the protocol file does not give its own."""
        if not isinstance(data, dict):
            return data
        shared = shared_wording()
        out = dict(data)
        for section in ("schedule_wording", "phrases"):
            own = data.get(section)
            if own is None or isinstance(own, dict):
                out[section] = {**shared[section], **(own or {})}
        return out

    @model_validator(mode="before")
    @classmethod
    def _cite_the_criteria(cls, data: object) -> object:
        """Grading by the shared CTCAE table cites the table's own source."""
        if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
            return data
        grading = data.get("grading") or []
        if any(isinstance(g, dict) and g.get("ctcae") is not None for g in grading):
            from dmtwatch.protocols.ctcae import ctcae_table

            table = ctcae_table()
            if table.source_key not in data["sources"]:
                data = {**data, "sources": {**data["sources"], table.source_key: table.source}}
        return data

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
        drugs = [d for r in self.imaging_findings for d in r.rescue_drugs]
        drugs += [d for r in self.result_validity for d in r.invalid_after]
        drugs += [d for r in self.risk_strata for d in r.prior_drugs]
        problems += [f"unknown drug {d!r}" for d in drugs if d not in DRUGS]
        strata = {s.id for r in self.risk_strata for s in r.strata}
        problems += [
            f"schedule {item.id}: unknown risk stratum {k!r}"
            for item in self.schedule
            for k in item.interval_by_risk
            if k not in strata
        ]
        if self.repopulation_window_days and set(self.repopulation_wording) != {
            "before",
            "inside",
            "after",
        }:
            problems.append("repopulation_wording needs before, inside and after")
        if self.schedule and self.schedule_wording is None:
            problems.append("a schedule needs its schedule_wording (overdue, baseline)")
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
            *self.result_validity,
            *self.risk_strata,
        ]

    def cite(self, keys: list[str]) -> str:
        return "; ".join(self.sources[k] for k in keys)


def _tests_of(rule: _Rule) -> list[str]:
    tests = [getattr(rule, "test", None)]
    companion = getattr(rule, "companion", None)
    if companion is not None:
        tests.append(companion.test)
    return [t for t in tests if t]


@cache
def shared_wording() -> dict:
    """protocols/wording.yaml: the wording every protocol shares unless it gives its own."""
    return yaml.safe_load(files("dmtwatch.protocols").joinpath("wording.yaml").read_text())


def protocol_names() -> list[str]:
    """The ids of the protocols in force (the shipped ones, and a clinic's own)."""
    from dmtwatch.protocols.protocol_set import in_force

    return list(in_force().ids)


def load_protocol(name: str) -> Protocol:
    """A protocol in force: shipped or a clinic's own, with any overlay applied (see
    protocols/protocol_set.py; `ProtocolSet.shipped()` for the files alone)."""
    from dmtwatch.protocols.protocol_set import in_force

    return in_force().get(name)


def load_protocols() -> list[Protocol]:
    from dmtwatch.protocols.protocol_set import in_force

    return list(in_force().protocols)
