"""A rule kind is one module under dmtwatch/rules/: the schema, the plan and the finding
pages find it there, and nothing else lists the kinds."""

from __future__ import annotations

import pkgutil

import dmtwatch.rules
from dmtwatch.engine.run import CLINICAL_KINDS, RULE_KINDS
from dmtwatch.protocols.schema import Protocol, load_protocols
from dmtwatch.rules import kind_of, rule_kinds


def test_every_module_declares_one_kind_with_its_own_section() -> None:
    modules = [m.name for m in pkgutil.iter_modules(dmtwatch.rules.__path__)]
    kinds = rule_kinds()
    assert len(kinds) == len(modules) >= 7
    assert len({k.section for k in kinds}) == len(kinds)
    assert {k.find.__module__.rpartition(".")[2] for k in kinds} == set(modules)


def test_the_schema_and_the_plan_take_every_kind() -> None:
    for kind in rule_kinds():
        assert kind.section in Protocol.model_fields, kind.section
        assert kind.find in RULE_KINDS
        assert (kind.find in CLINICAL_KINDS) == kind.clinical
        assert len(kind.mechanism) > 100  # the finding page says how it reads the data


def test_each_loaded_rule_knows_its_kind() -> None:
    for protocol in load_protocols():
        for kind in rule_kinds():
            for rule in getattr(protocol, kind.section):
                assert kind_of(rule) is kind
