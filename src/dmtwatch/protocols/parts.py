"""The parts of a protocol file every rule kind shares: severities, the therapy, the
monitoring schedule, the shared wording, and `Rule`, the base of each kind's rule.

The rule kinds themselves (grading, flags, relapse imaging...) live one module each under
dmtwatch/rules/, each with its own part of the schema; protocols/schema.py assembles them
into `Protocol`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Severity = Literal["urgent", "high", "routine", "info"]
SEVERITY_ORDER: dict[str, int] = {"urgent": 0, "high": 1, "routine": 2, "info": 3}
Limit = Literal["above_ref_high", "below_ref_low"]
# What raises a lab flag: beyond a limit of the result's range, or, for a qualitative
# test, an answer at or past the catalogue's `abnormal_from` (e.g. urine blood "trace").
Trigger = Literal["above_ref_high", "below_ref_low", "positive"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Strict):
    """What every rule of a protocol has: a code, its wording and its sources. A rule kind
    (one module under dmtwatch/rules/) adds its own fields and says which tests, drugs
    and risk strata it names, so the protocol can check they exist."""

    code: str
    title: str
    detail: str
    action: str
    source: list[str] = Field(min_length=1)

    def tests(self) -> list[str]:
        """Lab tests (or mri_<region>) the rule reads: `test`, and a companion's."""
        tests = [getattr(self, "test", None)]
        companion = getattr(self, "companion", None)
        if companion is not None:
            tests.append(companion.test)
        return [t for t in tests if t]

    def drugs(self) -> list[str]:
        """Drugs the rule names (rescue therapies, prior drugs...): none by default."""
        return []

    def stratum_ids(self) -> list[str]:
        """Risk strata the rule defines (a schedule item may shorten its interval by them)."""
        return []


_Rule = Rule  # the name the shipped rule modules and the CTCAE table were written with


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


class Ageing(_Strict):
    """An alarm about an event long past is still shown, at a lower severity."""

    after_days: int = Field(ge=1)
    severity: Severity


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
    drug_from: str  # a rescue therapy or prior drug in a list: {drug} {date}
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
