"""Courses and exposures of a protocol's drug, as whole-table window queries.

Treatment rows closer than the protocol's gap merge into one episode (an alemtuzumab
course exported one row per infusion day, or natalizumab one row per infusion).
"""

from __future__ import annotations

import ibis
from ibis import _

from dmtwatch.engine.context import Context, add_days
from dmtwatch.model.tables import NOT_DMT
from dmtwatch.protocols.parts import Therapy


def treatment_rows(ctx: Context, therapy: Therapy) -> ibis.Table:
    """The drug's rows with an effective last day no later than as-of.

    A dose covers the dosing interval after it (`dose_covers_days`): natalizumab exported
    one row per infusion is still on board between infusions and after the last one. A
    row left open ends the day before another disease-modifying therapy starts (a switch
    is a stop, and the tail after it, e.g. PML vigilance, then runs from there).
    """
    tr = ctx.tables["treatments"].filter(_.drug == therapy.drug)
    if therapy.open_end == "single_day":
        open_end = tr.start_date
    else:
        tr = _with_next_therapy(ctx, therapy, tr)
        open_end = ibis.coalesce(add_days(tr.next_therapy, -1), ctx.as_of_lit)
    end = tr.end_date.fill_null(open_end)
    if therapy.dose_covers_days is not None:
        end = ibis.greatest(end, add_days(tr.start_date, therapy.dose_covers_days))
    end = ibis.least(end, ctx.as_of_lit)
    return tr.select("patient_id", "start_date", end_date=end)


def _with_next_therapy(ctx: Context, therapy: Therapy, tr: ibis.Table) -> ibis.Table:
    """`tr` with `next_therapy`: the first start of another DMT after each row's start."""
    others = ctx.tables["treatments"].filter(~_.drug.isin([therapy.drug, *NOT_DMT]))
    others = others.select(o_patient="patient_id", o_start="start_date")
    j = tr.left_join(others, (tr.patient_id == others.o_patient) & (others.o_start > tr.start_date))
    return j.group_by(tr.columns).aggregate(next_therapy=j.o_start.min())


def episodes(ctx: Context, therapy: Therapy) -> ibis.Table:
    """One row per patient and episode: start, last day, days exposed, number."""
    rows = treatment_rows(ctx, therapy)
    order = [rows.start_date, rows.end_date]
    rows = rows.mutate(
        reach=rows.end_date.max().over(
            ibis.cumulative_window(group_by="patient_id", order_by=order)
        )
    )
    rows = rows.mutate(prev_reach=rows.reach.lag().over(group_by="patient_id", order_by=order))
    rows = rows.mutate(
        new=(
            rows.prev_reach.isnull()
            | (rows.start_date.delta(rows.prev_reach, unit="day") > therapy.episode_gap_days)
        ).cast("int32")
    )
    rows = rows.mutate(
        episode=rows.new.sum().over(ibis.cumulative_window(group_by="patient_id", order_by=order))
    )
    eps = rows.group_by("patient_id", "episode").aggregate(
        start=rows.start_date.min(), end=rows.end_date.max()
    )
    return eps.mutate(days=eps.end.delta(eps.start, unit="day") + 1)


def all_episodes(ctx: Context, therapy: Therapy) -> ibis.Table:
    """Every episode, with the day the next one starts (null for the latest): a result
    dated after an episode's start and on or before the next start belongs to it."""
    eps = episodes(ctx, therapy)
    eps = eps.mutate(next_start=eps.start.lead().over(group_by="patient_id", order_by=eps.start))
    return ctx.materialize(f"episodes_{therapy.drug}", eps)


def current_episode(ctx: Context, therapy: Therapy) -> ibis.Table:
    """Per patient: the latest episode, the first exposure (day 0), the first episode's
    last day and days exposed."""
    eps = all_episodes(ctx, therapy)
    totals = eps.group_by("patient_id").aggregate(
        first_start=eps.start.min(),
        first_end=eps.end.min(),
        exposure_days=eps.days.sum(),
        last_episode=eps.episode.max(),
    )
    latest = eps.join(
        totals, (eps.patient_id == totals.patient_id) & (eps.episode == totals.last_episode)
    )
    latest = latest.select(
        "patient_id", "episode", "start", "end", "first_start", "first_end", "exposure_days"
    )
    return ctx.materialize(f"episode_{therapy.drug}", latest)


def in_episode(ctx: Context, therapy: Therapy, t: ibis.Table, date: str) -> ibis.Table:
    """Rows of `t` dated after day 0, each with the `episode` (and its `start`) it falls in:
    after that episode's start, on or before the next one's."""
    eps = all_episodes(ctx, therapy).select(
        e_patient="patient_id", episode="episode", e_start="start", e_next="next_start"
    )
    j = t.join(
        eps,
        (t.patient_id == eps.e_patient)
        & (t[date] > eps.e_start)
        & (eps.e_next.isnull() | (t[date] <= eps.e_next)),
    )
    return j.drop("e_patient", "e_next")


def last_end_before(ctx: Context, therapy: Therapy, events: ibis.Table, date: str) -> ibis.Table:
    """`events` with `last_infusion`: the latest treatment day on or before its `date`."""
    rows = treatment_rows(ctx, therapy)
    j = events.join(
        rows, (events.patient_id == rows.patient_id) & (rows.start_date <= events[date])
    )
    last = ibis.least(j.end_date, j[date])
    keys = [c for c in events.columns]
    return j.group_by(keys).aggregate(last_infusion=last.max())
