"""What every audit section reads: the clinic in DuckDB cut at as-of, the options, the
protocol, the engine's plan (its functions compute the facts `check` also uses: grading,
flags, exposure), and the `cohort` table (one row per patient with a first infusion of
the drug, day 0, as the engine's `current_episode` counts it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import duckdb
import ibis

from dmtwatch.engine.context import Context
from dmtwatch.engine.exposure import current_episode
from dmtwatch.engine.run import connect, run_steps
from dmtwatch.model.dataset import Dataset
from dmtwatch.model.tables import NOT_DMT
from dmtwatch.outcomes.settings import settings
from dmtwatch.protocols.schema import Protocol, load_protocol

_WINDOWS = settings().windows


@dataclass(frozen=True)
class AuditOptions:
    """The run's choices; the defaults come from settings.yaml."""

    pre_window: int | Literal["therapy"] = _WINDOWS.pre_days  # days before day 0, or "therapy"
    post_window_days: int = _WINDOWS.post_days
    mri_pre_days: int = _WINDOWS.mri_pre_days
    mri_post_window: tuple[int, int] = _WINDOWS.mri_post  # days after day 0
    where: dict[str, str] = field(default_factory=dict)  # subgroup: cohort column -> value
    drug: str = "alemtuzumab"


@dataclass
class AuditContext:
    con: duckdb.DuckDBPyConnection
    as_of: dt.date
    options: AuditOptions

    # The engine's plan: its functions (grading, flags, exposure) build on it, and its
    # intermediate steps run once on this connection however many sections read them.
    plan: Context = field(default_factory=Context)
    _steps_run: int = 0

    @cached_property
    def protocol(self) -> Protocol:
        return load_protocol(self.options.drug)

    @cached_property
    def rescue_drugs(self) -> list[str]:
        """The protocol's rescue therapies (its imaging rules' `rescue_drugs`): the one
        list the CNS watch and the timelines use."""
        return sorted({d for r in self.protocol.imaging_findings for d in r.rescue_drugs})

    def engine_table(self, name: str, expr: ibis.Table) -> None:
        """An engine expression computed into the temp table `name`, after the engine
        steps it reads (each step runs once per audit)."""
        sql = ibis.to_sql(expr, dialect="duckdb")
        run_steps(self.con, self.plan.steps[self._steps_run :])
        self._steps_run = len(self.plan.steps)
        self.con.execute(f'CREATE TEMP TABLE "{name}" AS {sql}')

    def rows(self, sql: str, params: list | None = None) -> list[dict]:
        rel = self.con.execute(sql, params or [])
        names = [d[0] for d in rel.description]
        return [dict(zip(names, r, strict=True)) for r in rel.fetchall()]

    def value(self, sql: str, params: list | None = None):
        return self.con.execute(sql, params or []).fetchall()[0][0]


def make_context(dataset: Dataset, as_of: dt.date, options: AuditOptions) -> AuditContext:
    con = connect(dataset, as_of)
    ctx = AuditContext(con, as_of, options)
    _build_cohort(ctx)
    return ctx


def _build_cohort(ctx: AuditContext) -> None:
    """Day 0, the therapy before it and why it stopped, demographics, end of follow-up.

    End of follow-up is the patient's last dated record, or as-of if earlier.
    """
    o = ctx.options
    # day 0: the engine's first exposure to the protocol's drug, as `check` counts it
    first = current_episode(ctx.plan, ctx.protocol.therapy)
    ctx.engine_table("audit_day0", first.select("patient_id", day0=first.first_start))
    ctx.con.execute(
        """
        CREATE TEMP TABLE cohort_all AS
        WITH day0 AS (SELECT patient_id, day0 FROM audit_day0),
        dated AS (
          SELECT patient_id, least(coalesce(end_date, start_date), params.as_of) AS d
            FROM in_treatments, params
          UNION ALL SELECT patient_id, date FROM in_labs
          UNION ALL SELECT patient_id, onset_date FROM in_relapses
          UNION ALL SELECT patient_id, date FROM in_mri
          UNION ALL SELECT patient_id, date FROM in_edss
          UNION ALL SELECT patient_id, least(coalesce(resolution_date, onset_date), params.as_of)
            FROM in_adverse_events, params),
        last_rec AS (SELECT patient_id, max(d) AS last_date FROM dated GROUP BY 1),
        prior AS (
          SELECT t.patient_id, t.drug AS prior_drug, t.stop_reason AS switch_reason,
                 t.start_date AS prior_start, coalesce(t.end_date, d.day0) AS prior_end,
                 row_number() OVER (PARTITION BY t.patient_id
                                    ORDER BY coalesce(t.end_date, d.day0) DESC, t.start_date DESC) AS rn
            FROM in_treatments t JOIN day0 d USING (patient_id)
           WHERE NOT list_contains(?, t.drug) AND t.drug <> ? AND t.start_date < d.day0),
        n_prior AS (
          SELECT t.patient_id, count(DISTINCT t.drug) AS n_prior_therapies
            FROM in_treatments t JOIN day0 d USING (patient_id)
           WHERE NOT list_contains(?, t.drug) AND t.drug <> ? AND t.start_date < d.day0 GROUP BY 1)
        SELECT d.patient_id, d.day0, p.sex, p.birth_date, p.ms_type, p.ms_onset_date,
               pr.prior_drug, pr.switch_reason, pr.prior_start, pr.prior_end,
               coalesce(n.n_prior_therapies, 0) AS n_prior_therapies,
               greatest(l.last_date, d.day0) AS fu_end,
               date_diff('day', d.day0, greatest(l.last_date, d.day0)) AS follow_up_days
          FROM day0 d JOIN in_patients p USING (patient_id)
          LEFT JOIN (SELECT * FROM prior WHERE rn = 1) pr USING (patient_id)
          LEFT JOIN n_prior n USING (patient_id)
          LEFT JOIN last_rec l USING (patient_id)
        """,
        [list(NOT_DMT), o.drug, list(NOT_DMT), o.drug],
    )
    allowed = {"switch_reason", "prior_drug", "sex", "ms_type"}
    unknown = set(o.where) - allowed
    if unknown:
        raise ValueError(f"cannot select a subgroup by {sorted(unknown)}; use {sorted(allowed)}")
    where = " AND ".join(f"{k} = ?" for k in o.where) or "true"
    ctx.con.execute(
        f"CREATE TEMP TABLE cohort AS SELECT * FROM cohort_all WHERE {where} ORDER BY patient_id",
        list(o.where.values()),
    )
