"""The rule kinds the engine knows, one module each.

A rule kind is everything about one kind of protocol rule in one place: its part of the
protocol schema (a pydantic model, a `Rule`), the whole-table query that finds it
(`find`), and what the finding pages say about how it reads the data (`mechanism`). A
module here declares `KIND = RuleKind(...)`; the protocol schema, the engine's plan and
the finding pages pick every kind up from here. Adding a kind is adding a module (and its
fixture tests); nothing else lists them.

The monitoring schedule (MON-OVERDUE, MON-BASELINE) is not a kind: it is the protocol's
own `schedule` section (engine/schedule.py).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import ibis

from dmtwatch.protocols.parts import Rule

if TYPE_CHECKING:
    from dmtwatch.protocols.schema import Protocol

if TYPE_CHECKING:
    from dmtwatch.engine.context import Context

Pair = tuple[ibis.Table, ibis.Table]  # a rule's findings and its evidence rows


@dataclass(frozen=True)
class RuleKind:
    section: str  # the protocol file's key holding a list of these rules, e.g. "flags"
    model: type[Rule]  # one rule's schema
    find: Callable[[Context, Protocol], list[Pair]]  # each rule's findings and evidence
    mechanism: str  # how the rule reads the data, in words, for its finding page
    clinical: bool = False  # reads relapses and MRI only (the audit's CNS watch runs these)


@cache
def rule_kinds() -> tuple[RuleKind, ...]:
    """Every module's KIND, in the order of their protocol sections' names."""
    kinds = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        kind = getattr(module, "KIND", None)
        if not isinstance(kind, RuleKind):
            raise TypeError(f"dmtwatch.rules.{info.name} declares no KIND = RuleKind(...)")
        kinds.append(kind)
    return tuple(sorted(kinds, key=lambda k: k.section))


def kind_of(rule: Rule) -> RuleKind:
    """The kind a loaded rule belongs to."""
    return next(k for k in rule_kinds() if isinstance(rule, k.model))
