"""Lab safety: one episode per patient and analyte, graded by the protocol files through
the engine's own grading (one source of truth with `check`), and the lymphocyte
trajectory by month since day 0.
"""

from __future__ import annotations

from dmtwatch.audit.context import AuditContext
from dmtwatch.audit.summaries import quartiles
from dmtwatch.engine.labs import graded_results
from dmtwatch.model.lab_catalogue import lab_catalogue

# The audit's name for an abnormal-result episode of each graded test.
EPISODE_NAMES = {
    "lymphocytes": "lymphopenia",
    "leukocytes": "leucopenia",
    "neutrophils": "neutropenia",
    "platelets": "thrombocytopenia",
    "creatinine": "creatinine_increased",
    "alt": "alt_increased",
    "ast": "ast_increased",
    "bilirubin": "bilirubin_increased",
}
MONTH = 30.4375


def _graded_table(ctx: AuditContext) -> None:
    expr = graded_results(ctx.plan, ctx.protocol)
    ctx.engine_table("graded", expr.select("patient_id", "test", "date", "value", "grade"))


def lab_section(ctx: AuditContext) -> dict:
    _graded_table(ctx)
    protocol = ctx.protocol
    direction = {r.test: r.direction for r in protocol.grading}
    episodes = ctx.rows(
        """
        WITH g AS (
          SELECT g.patient_id, g.test, date_diff('day', c.day0, g.date) AS day, g.value, g.grade
            FROM graded g JOIN cohort c USING (patient_id) WHERE g.date <= c.fu_end),
        onset AS (SELECT patient_id, test, min(day) AS onset_day FROM g WHERE grade >= 1 GROUP BY ALL)
        SELECT o.patient_id, o.test, o.onset_day,
               min(g.value) FILTER (WHERE g.day >= o.onset_day) AS low,
               max(g.value) FILTER (WHERE g.day >= o.onset_day) AS high,
               max(g.grade) AS grade,
               min(g.day) FILTER (WHERE g.day > o.onset_day AND g.grade = 0) AS normal_day
          FROM onset o JOIN g USING (patient_id, test)
         GROUP BY ALL ORDER BY o.test, o.patient_id
        """
    )
    tested = dict(
        ctx.con.execute(
            "SELECT test, count(DISTINCT patient_id) FROM graded JOIN cohort USING (patient_id) "
            "WHERE date <= fu_end GROUP BY 1"
        ).fetchall()
    )
    out: dict = {}
    for test, name in EPISODE_NAMES.items():
        if test not in direction:
            continue
        extreme = "nadir" if direction[test] == "low" else "peak"
        eps = [
            {
                "patient_id": e["patient_id"],
                "onset_day": e["onset_day"],
                extreme: e["low"] if extreme == "nadir" else e["high"],
                "grade": e["grade"],
                "normal_day": e["normal_day"],
            }
            for e in episodes
            if e["test"] == test
        ]
        out[name] = {
            "test": test,
            "unit": lab_catalogue().tests[test].unit,
            "n": len(eps),
            "n_tested": tested.get(test, 0),
            "onset_day": quartiles([e["onset_day"] for e in eps]),
            extreme: quartiles([e[extreme] for e in eps]),
            "days_to_normal": quartiles(
                [e["normal_day"] - e["onset_day"] for e in eps if e["normal_day"] is not None]
            ),
            "not_yet_normal_n": sum(e["normal_day"] is None for e in eps),
            "worst_grade": {str(g): sum(e["grade"] == g for e in eps) for g in range(1, 5)},
            "episodes": eps,
        }
    out["trajectory"] = {"lymphocytes": _trajectory(ctx, "lymphocytes")}
    out["grade_bands"] = {"lymphocytes": _bands(protocol, "lymphocytes")}
    return out


def _trajectory(ctx: AuditContext, test: str) -> list[dict]:
    """Median and IQR of a test's results by month since day 0 (month 0: days -15 to 15)."""
    return ctx.rows(
        f"""
        SELECT floor((date_diff('day', c.day0, l.date) + 15) / {MONTH})::INTEGER AS month,
               median(l.value) AS median, quantile_cont(l.value, 0.25) AS q1,
               quantile_cont(l.value, 0.75) AS q3, count(DISTINCT l.patient_id) AS n
          FROM in_labs l JOIN cohort c USING (patient_id)
         WHERE l.test = ? AND l.date BETWEEN c.day0 - 15 AND c.fu_end AND l.value IS NOT NULL
         GROUP BY 1 ORDER BY 1
        """,
        [test],
    )


def _bands(protocol, test: str) -> dict | None:
    rule = next((r for r in protocol.grading if r.test == test), None)
    if rule is None:
        return None
    lln = lab_catalogue().tests[test].ref_low
    grades = {}
    for g, c in rule.grades.items():
        if c.below is not None:
            grades[str(g)] = c.below
        elif c.below_lln is not None and lln is not None:
            grades[str(g)] = c.below_lln * lln
    return {"lln": lln, "grades": grades, "unit": lab_catalogue().tests[test].unit}
