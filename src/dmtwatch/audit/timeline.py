"""Each patient's timeline in days from day 0, for the swimmer plot: infusions, relapses,
MRIs (active or not), adverse events and rescue therapy (the protocol's `rescue_drugs`,
the list the CNS watch uses)."""

from __future__ import annotations

from dmtwatch.audit.context import AuditContext


def timeline(ctx: AuditContext) -> list[dict]:
    return ctx.rows(
        """
        SELECT * FROM (
          SELECT t.patient_id, date_diff('day', c.day0, t.start_date) AS day, 'infusion' AS kind,
                 NULL::BOOLEAN AS active, t.drug AS label
            FROM in_treatments t JOIN cohort c USING (patient_id) WHERE t.drug = ?
          UNION ALL
          SELECT r.patient_id, date_diff('day', c.day0, r.onset_date), 'relapse', NULL, r.severity
            FROM in_relapses r JOIN cohort c USING (patient_id)
           WHERE coalesce(r.confirmed, true) AND r.onset_date <= c.fu_end
          UNION ALL
          SELECT m.patient_id, date_diff('day', c.day0, m.date), 'mri',
                 coalesce(m.new_t2, 0) > 0 OR coalesce(m.gd_enhancing, 0) > 0, m.region
            FROM in_mri m JOIN cohort c USING (patient_id) WHERE m.date <= c.fu_end
          UNION ALL
          SELECT a.patient_id, date_diff('day', c.day0, a.onset_date), 'adverse_event',
                 coalesce(a.serious, false), a.term
            FROM in_adverse_events a JOIN cohort c USING (patient_id)
           WHERE a.onset_date BETWEEN c.day0 AND c.fu_end
          UNION ALL
          SELECT t.patient_id, date_diff('day', c.day0, t.start_date), 'rescue', NULL, t.drug
            FROM in_treatments t JOIN cohort c USING (patient_id)
           WHERE list_contains(?, t.drug) AND t.start_date >= c.day0)
        WHERE day >= -365
        ORDER BY patient_id, day, kind
        """,
        [ctx.options.drug, ctx.rescue_drugs],
    )


def completeness(ctx: AuditContext, mri: dict) -> dict:
    return {
        "patients_without_pre_mri": mri["pre"]["missing_n"],
        "patients_without_post_mri": mri["post"]["missing_n"],
        "patients_without_labs_after_day0": ctx.value(
            "SELECT count(*) FROM cohort c WHERE NOT EXISTS (SELECT 1 FROM in_labs l "
            "WHERE l.patient_id = c.patient_id AND l.date > c.day0 AND l.date <= c.fu_end)"
        ),
        "lab_results_after_day0": ctx.value(
            "SELECT count(*) FROM in_labs l JOIN cohort c USING (patient_id) "
            "WHERE l.date > c.day0 AND l.date <= c.fu_end"
        ),
        "patients_without_edss": ctx.value(
            "SELECT count(*) FROM cohort c WHERE NOT EXISTS "
            "(SELECT 1 FROM in_edss e WHERE e.patient_id = c.patient_id)"
        ),
    }
