"""Run every protocol over the whole cohort and keep one finding per patient and code.

Each rule is a whole-table query; the results are stacked, reduced to the most severe
(then latest) finding per (patient, code, test for MON-*), and ordered most urgent first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from contextlib import closing
from dataclasses import asdict, dataclass
from functools import cache

import duckdb
import ibis
import pyarrow as pa
import pyarrow.compute as pc

from dmtwatch import duck
from dmtwatch.duck import sql_literal
from dmtwatch.engine import plan_cache
from dmtwatch.engine.context import Context, Step, tables_read
from dmtwatch.engine.findings import EVIDENCE_COLUMNS, FINDING_COLUMNS
from dmtwatch.engine.schedule import missing_baseline, overdue
from dmtwatch.model.dataset import Dataset
from dmtwatch.model.tables import EVENT_DATE
from dmtwatch.protocols.loading import ProtocolSet, in_force
from dmtwatch.protocols.schema import SEVERITY_ORDER, Protocol
from dmtwatch.rules import rule_kinds

# Codes whose findings are kept per test, not per patient (contract section 4).
PER_TEST_CODES = ("MON-OVERDUE", "MON-BASELINE")


@dataclass
class Findings:
    as_of: dt.date
    findings: pa.Table  # OUTPUT_COLUMNS, most urgent first
    evidence: pa.Table  # EVIDENCE_COLUMNS, rows behind each kept finding

    def counts(self) -> dict[str, int]:
        codes = self.findings.column("code").to_pylist()
        return {c: codes.count(c) for c in sorted(set(codes))}

    def evidence_by_finding(self) -> dict[tuple[str, str, str | None], list[dict]]:
        """The evidence rows (table, date, item, value) of each finding, by its
        (code, patient_id, test), in the table's order."""
        out: dict[tuple[str, str, str | None], list[dict]] = {}
        for row in self.evidence.to_pylist():
            key = (row.pop("code"), row.pop("patient_id"), row.pop("test"))
            out.setdefault(key, []).append(row)
        return out


@dataclass(frozen=True)
class RuleSql:
    """One rule's findings and evidence queries, and the one step table both read (every
    rule stages its rows first): no rows there, nothing to find, no query to run.

    `drug`: the protocol's drug. Every rule starts from the patient's exposure to it, so
    an input where nobody received it needs none of the protocol's rules (or the steps
    only they read): a CDS call pays for the patient's own therapies only.
    """

    drug: str
    stage: str
    findings: str
    evidence: str


@dataclass(frozen=True)
class Plan:
    """Protocols compiled to SQL: intermediate steps, then each rule's queries."""

    steps: tuple[Step, ...]
    rules: tuple[RuleSql, ...]


# The schedule's own findings, then every rule kind's (one module each, dmtwatch/rules/).
RULE_KINDS = (overdue, missing_baseline, *(kind.find for kind in rule_kinds()))

# The rules on relapses and MRI alone (the audit's CNS watch runs just these).
CLINICAL_KINDS = tuple(kind.find for kind in rule_kinds() if kind.clinical)


def compile_plan(protocols: list[Protocol], kinds: tuple = RULE_KINDS) -> Plan:
    ctx = Context()
    rules = []
    for protocol in protocols:
        for kind in kinds:
            for f, e in kind(ctx, protocol):
                f, e = f.select(*FINDING_COLUMNS), e.select(*EVIDENCE_COLUMNS)
                # the as-of date (`params`) is always there; besides it, one staged table
                read = (set(tables_read(f)) | set(tables_read(e))) - {"params"}
                if len(read) != 1:  # run_rules and needed_for rely on it
                    raise ValueError(f"{kind.__name__}: a rule must read one staged table")
                sql = lambda t: ibis.to_sql(t, dialect="duckdb")  # noqa: E731
                rules.append(RuleSql(protocol.therapy.drug, read.pop(), sql(f), sql(e)))
    return Plan(tuple(ctx.steps), tuple(rules))


@cache
def _plan_for(protocols: ProtocolSet, kinds: tuple = RULE_KINDS) -> Plan:
    key = plan_cache.plan_key(protocols, tuple(k.__name__ for k in kinds))
    stored = plan_cache.read(key)
    if stored is not None:
        steps = tuple(Step(s["name"], s["sql"], tuple(s["reads"])) for s in stored["steps"])
        return Plan(steps, tuple(RuleSql(**r) for r in stored["rules"]))
    plan = compile_plan(list(protocols.protocols), kinds)
    plan_cache.write(key, asdict(plan))
    return plan


def protocol_set_for(protocols: ProtocolSet | Sequence[str] | None) -> ProtocolSet:
    """None: the protocols in force (shipped, a clinic's own, overlays); ids: those of them."""
    if isinstance(protocols, ProtocolSet):
        return protocols
    pset = in_force()
    return pset.select(list(protocols)) if protocols else pset


def connect(
    dataset: Dataset, as_of: dt.date, *, optimize: bool = True
) -> duckdb.DuckDBPyConnection:
    """A DuckDB cursor where compiled plans run: `in_<table>` cut at as-of, `params`."""
    con = duck.cursor(optimize=optimize)
    con.execute("CREATE TEMP TABLE params AS SELECT ?::DATE AS as_of", [as_of])
    for name, arrow in dataset.tables.items():
        con.register(f"src_{name}", arrow)
        cut = (
            f" WHERE {EVENT_DATE[name]} <= (SELECT as_of FROM params)" if name in EVENT_DATE else ""
        )
        con.execute(f"CREATE TEMP VIEW in_{name} AS SELECT * FROM src_{name}{cut}")
    return con


def run_steps(con: duckdb.DuckDBPyConnection, steps: tuple[Step, ...] | list[Step]) -> None:
    for step in steps:
        con.execute(f'CREATE TEMP TABLE "{step.name}" AS {step.sql}')


def run_rules(con: duckdb.DuckDBPyConnection, plan: Plan) -> None:
    """Every rule's findings and evidence, unreduced, as tables `found` and `evidence`.

    Only rules with staged rows run their queries: for one patient's record most rules
    have none (a query each that DuckDB would plan for nothing); for a cohort, few.
    """
    stages = sorted({r.stage for r in plan.rules})
    probe = " UNION ALL ".join(
        f'SELECT {sql_literal(s)} WHERE EXISTS (SELECT 1 FROM "{s}")' for s in stages
    )
    with_rows = {s for (s,) in con.execute(probe).fetchall()} if stages else set()
    live = [r for r in plan.rules if r.stage in with_rows]
    for table, part in (("found", "findings"), ("evidence", "evidence")):
        if live:
            union = " UNION ALL ".join(f"SELECT * FROM ({getattr(r, part)})" for r in live)
        else:  # nothing to find: the table still has its columns
            union = f"SELECT * FROM ({getattr(plan.rules[0], part)}) LIMIT 0"
        con.execute(f"CREATE TEMP TABLE {table} AS {union}")


def needed_for(plan: Plan, dataset: Dataset) -> Plan:
    """The part of the plan an input needs: the rules of the drugs someone in it received,
    and the steps those rules read, directly or through other steps. A cohort needs all
    of it; one patient's record only their own therapies' protocols."""
    drugs = set(pc.unique(dataset["treatments"]["drug"]).to_pylist())
    rules = tuple(r for r in plan.rules if r.drug in drugs)
    if len(rules) in (0, len(plan.rules)):
        return plan  # no therapy at all (nothing will be found), or everything is needed
    needed = {r.stage for r in rules}
    for step in reversed(plan.steps):  # a step reads only steps before it
        if step.name in needed:
            needed.update(step.reads)
    return Plan(tuple(s for s in plan.steps if s.name in needed), rules)


def is_small(dataset: Dataset) -> bool:
    """For a small input DuckDB's optimizer costs more than it saves: planning the plan's
    ~30 statements is most of the run time. Measured (optimizer on -> off): 5 synthetic
    patients 0.32 -> 0.24 s, 50 0.49 -> 0.31 s, 200 0.54 -> 0.41 s, 1000 (270k rows)
    even, 5000 1.3 -> 1.8 s. Results do not depend on it (tests/test_duck.py)."""
    return sum(t.num_rows for t in dataset.tables.values()) <= duck.SMALL_ROWS


def run_check(
    dataset: Dataset,
    as_of: dt.date,
    protocols: ProtocolSet | Sequence[str] | None = None,
    kinds: tuple = RULE_KINDS,
) -> Findings:
    """Findings for the whole cohort as of a date (nothing dated later is used), by a
    protocol set (None: the protocols in force; a list of ids: those of them)."""
    plan = needed_for(_plan_for(protocol_set_for(protocols), kinds), dataset)
    with closing(connect(dataset, as_of, optimize=not is_small(dataset))) as con:
        run_steps(con, plan.steps)
        run_rules(con, plan)
        return reduce_findings(con, as_of)


# A finding's stable identity: the first 128 bits of the SHA-256 of its protocol, code,
# patient, test and anchor, joined by the unit separator (contract section 4).
KEY_SQL = (
    "substr(sha256(concat_ws(chr(31), protocol, code, patient_id, coalesce(test, ''), "
    "anchor)), 1, 32)"
)


def reduce_findings(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> Findings:
    """The most severe (then latest) finding per patient and code, and the rows behind it,
    most urgent first; within a severity, clinical alarms (a possible ITP, CNS, renal)
    before schedule findings, so an alarm never sits below a page of overdue tests."""
    rank = " ".join(f"WHEN {sql_literal(s)} THEN {i}" for s, i in SEVERITY_ORDER.items())
    per_test = ", ".join(sql_literal(c) for c in PER_TEST_CODES)
    con.execute(
        f"""
        CREATE TEMP TABLE kept AS
        SELECT * EXCLUDE (rn, key_test, sev) FROM (
          SELECT *, CASE WHEN code IN ({per_test}) THEN test ELSE '' END AS key_test,
                 CASE severity {rank} END AS sev,
                 row_number() OVER (
                   PARTITION BY patient_id, code, CASE WHEN code IN ({per_test}) THEN test ELSE '' END
                   ORDER BY CASE severity {rank} END, grade DESC NULLS LAST, date DESC, test) AS rn
          FROM found)
        WHERE rn = 1
        """
    )
    # triage: within a severity, clinical alarms before overdue or missing tests
    kept = con.sql(
        f"SELECT * EXCLUDE (anchor, facts), {KEY_SQL} AS key, facts "
        f"FROM kept ORDER BY CASE severity {rank} END, "
        f"CASE WHEN code IN ({per_test}) THEN 1 ELSE 0 END, date, patient_id, code, test"
    ).to_arrow_table()
    ev = con.sql(
        """
        SELECT DISTINCT e.* FROM evidence e JOIN kept k
          ON e.code = k.code AND e.patient_id = k.patient_id
         AND coalesce(e.test, '') = coalesce(k.test, '')
        ORDER BY e.patient_id, e.code, e.test, e.date, e.table, e.item, e.value
        """
    ).to_arrow_table()
    return Findings(as_of, kept, ev)
