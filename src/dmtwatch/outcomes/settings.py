"""The audit's settings (settings.yaml): the numbers of its definitions and the words of
its Methods section, filled in from those numbers, the run's options and the protocol."""

from __future__ import annotations

import datetime as dt
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

import yaml
from pydantic import BaseModel, ConfigDict, Field

from dmtwatch.duck import sql_literal
from dmtwatch.outcomes.format import join_and, join_or, words

if TYPE_CHECKING:
    from dmtwatch.outcomes.context import AuditOptions
    from dmtwatch.protocols.schema import Protocol


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Windows(_Strict):
    pre_days: int = Field(ge=1)
    post_days: int = Field(ge=1)
    mri_pre_days: int = Field(ge=1)
    mri_post: tuple[int, int]
    mri_target_day: int


class EdssStep(_Strict):
    baseline_up_to: float | None
    increase: float = Field(gt=0)


class EdssWorsening(_Strict):
    steps: list[EdssStep] = Field(min_length=1)
    confirm_days: int = Field(ge=1)

    def needed_sql(self, baseline: str) -> str:
        """The increase needed from `baseline` (a SQL expression), as a CASE."""
        cases = [
            f"WHEN {baseline} <= {sql_literal(s.baseline_up_to)} THEN {sql_literal(s.increase)}"
            for s in self.steps
            if s.baseline_up_to is not None
        ]
        last = next((s.increase for s in self.steps if s.baseline_up_to is None), None)
        return f"CASE {' '.join(cases)} ELSE {sql_literal(last)} END"

    def words(self) -> str:
        """'1.5 points from 0, 1.0 up to 5.0, 0.5 above'."""
        parts = []
        for i, s in enumerate(self.steps):
            if s.baseline_up_to is None:
                parts.append(f"{s.increase:.1f} above")
            elif i == 0 and s.baseline_up_to == 0:
                parts.append(f"{s.increase:.1f} points from 0")
            else:
                parts.append(f"{s.increase:.1f} up to {s.baseline_up_to:.1f}")
        return ", ".join(parts)


class Trajectory(_Strict):
    test: str
    month_days: float = Field(gt=0)
    half_month_days: int = Field(ge=0)


class MethodsItem(_Strict):
    section: str
    term: str
    definition: str


class Settings(_Strict):
    windows: Windows
    edss_worsening: EdssWorsening
    trajectory: Trajectory
    methods: list[MethodsItem]


@cache
def settings() -> Settings:
    text = resources.files("dmtwatch.outcomes").joinpath("settings.yaml").read_text("utf-8")
    return Settings.model_validate(yaml.safe_load(text))


def _words_list(drugs: list[str]) -> str:
    return join_or([words(d) for d in drugs]) if drugs else "none listed"


def methods(
    options: AuditOptions, as_of: dt.date, protocol: Protocol, codes: tuple[str, ...]
) -> dict[str, list[dict[str, str]]]:
    """The Methods entries of each section, filled in: {section: [{term, definition}]}."""
    s = settings()
    o = options
    pre = (
        "the exposure to the therapy that ended last before day 0, up to the day before day 0"
        if o.pre_window == "therapy"
        else f"the {o.pre_window} days before day 0 (days -{o.pre_window} to -1)"
    )
    subgroup = (
        " Subgroup: " + ", ".join(f"{k} = {v}" for k, v in o.where.items()) + "." if o.where else ""
    )
    within = {f.code: f.companion.within_days for f in protocol.flags if f.companion is not None}
    rescue = list(dict.fromkeys(d for r in protocol.imaging_findings for d in r.rescue_drugs))
    lo, hi = o.mri_post_window
    values = {
        "drug": o.drug,
        "as_of": as_of.isoformat(),
        "subgroup": subgroup,
        "pre_window": pre,
        "post_days": o.post_window_days,
        "post_last_day": o.post_window_days - 1,
        "mri_pre_days": o.mri_pre_days,
        "mri_lo": lo,
        "mri_hi": hi,
        "mri_target_day": s.windows.mri_target_day,
        "edss_rule": s.edss_worsening.words(),
        "confirm_days": s.edss_worsening.confirm_days,
        "month_days": f"{s.trajectory.month_days:.2f}",
        "half_month_days": s.trajectory.half_month_days,
        "hypo_within_days": within.get("THY-HYPO", "n/a"),
        "hyper_within_days": within.get("THY-HYPER", "n/a"),
        "rescue_drugs": _words_list(rescue),
        "cns_codes": join_and(list(codes)),
    }
    out: dict[str, list[dict[str, str]]] = {}
    for m in s.methods:
        out.setdefault(m.section, []).append(
            {"term": m.term, "definition": m.definition.format(**values)}
        )
    return out
