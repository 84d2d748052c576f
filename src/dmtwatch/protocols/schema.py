"""The shape of a protocol file, checked by pydantic when it is loaded.

A protocol holds clinical content only: numbers, windows, wording, citations. Its shared
parts (therapy, schedule, wording) are in protocols/parts.py; each kind of rule (grading,
flags, relapse imaging, imaging findings, infusion proximity, result validity, risk
strata) brings its own section from its module under dmtwatch/rules/, and `Protocol` is
assembled from them. The engine interprets whatever the file says.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Literal

import yaml
from pydantic import create_model, model_validator

from dmtwatch.model.lab_catalogue import lab_catalogue
from dmtwatch.model.tables import DRUGS, MRI_REGIONS
from dmtwatch.protocols.parts import (
    SEVERITY_ORDER,
    Limit,
    Phrases,
    Rule,
    ScheduleItem,
    ScheduleWording,
    Severity,
    Therapy,
    Trigger,
    _Strict,
)
from dmtwatch.rules import rule_kinds

__all__ = [
    "SEVERITY_ORDER",
    "Limit",
    "Protocol",
    "Rule",
    "Severity",
    "Trigger",
    "load_protocol",
    "load_protocols",
    "protocol_names",
]


class ProtocolBase(_Strict):
    """Every section but the rules; `Protocol` adds one list per rule kind."""

    id: str
    title: str
    version: str
    therapy: Therapy
    schedule: list[ScheduleItem] = []
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
    def _references_resolve(self) -> ProtocolBase:
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
            problems += [
                f"{rule.code}: unknown test {t!r}" for t in rule.tests() if t not in known_tests
            ]
        drugs = [d for rule in self.rules() for d in rule.drugs()]
        problems += [f"unknown drug {d!r}" for d in drugs if d not in DRUGS]
        strata = {s for rule in self.rules() for s in rule.stratum_ids()}
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

    def rules(self) -> list[Rule]:
        """Every rule of every kind, in the order of the kinds."""
        return [rule for kind in rule_kinds() for rule in getattr(self, kind.section)]

    def cite(self, keys: list[str]) -> str:
        return "; ".join(self.sources[k] for k in keys)


# One list per rule kind, under the kind's section name (e.g. `flags: [...]`).
Protocol = create_model(
    "Protocol",
    __base__=ProtocolBase,
    __module__=__name__,
    **{kind.section: (list[kind.model], []) for kind in rule_kinds()},
)


@cache
def shared_wording() -> dict:
    """protocols/wording.yaml: the wording every protocol shares unless it gives its own."""
    return yaml.safe_load(files("dmtwatch.protocols").joinpath("wording.yaml").read_text())


def protocol_names() -> list[str]:
    """The ids of the protocols in force (the shipped ones, and a clinic's own)."""
    from dmtwatch.protocols.loading import in_force

    return list(in_force().ids)


def load_protocol(name: str) -> Protocol:
    """A protocol in force: shipped or a clinic's own, with any overlay applied (see
    protocols/loading.py; `ProtocolSet.shipped()` for the files alone)."""
    from dmtwatch.protocols.loading import in_force

    return in_force().get(name)


def load_protocols() -> list[Protocol]:
    from dmtwatch.protocols.loading import in_force

    return list(in_force().protocols)
