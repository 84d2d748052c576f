"""`generate`: a whole synthetic MS clinic as Arrow tables, in the contract's input columns.

Each table is drawn from its own random stream of the seed, so the result is the same
for the same seed and does not shift when one table's drawing changes.
"""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa

from dmtwatch.model.tables import TABLES
from dmtwatch.synth.adverse_events import build_adverse_events
from dmtwatch.synth.cns_inflammation import draw_cns_cases
from dmtwatch.synth.cohort import draw_cohort
from dmtwatch.synth.days import day_number
from dmtwatch.synth.edss import build_edss
from dmtwatch.synth.history import draw_history
from dmtwatch.synth.labs import build_labs
from dmtwatch.synth.mri import draw_mri, mri_table
from dmtwatch.synth.patients import build_patients
from dmtwatch.synth.relapses import draw_relapses, relapses_table
from dmtwatch.synth.treatments import build_treatments

DEFAULT_UNTIL = date(2016, 1, 15)


def generate(n_patients: int, seed: int, until: date = DEFAULT_UNTIL) -> dict[str, pa.Table]:
    """A clinic of `n_patients` as it would export its data on `until`.

    Returns one Arrow table per contract input table (patients, treatments, labs,
    relapses, mri, edss, adverse_events) with exactly the contract's columns, nothing
    dated after `until`. In labs, patient_id/test/value/unit are dictionary-encoded
    (`value` is text: numbers and the urine_blood answers); elsewhere text is plain.
    """
    if isinstance(until, datetime):
        until = until.date()
    if n_patients < 1:
        raise ValueError("n_patients must be at least 1")
    last = day_number(until)
    cohort = draw_cohort(n_patients, seed, last)
    history = draw_history(cohort, seed)
    cns = draw_cns_cases(cohort, seed)
    labs, events = build_labs(cohort, history, seed)
    relapse_rows = draw_relapses(cohort, cns, seed)
    tables = {
        "patients": build_patients(cohort),
        "treatments": build_treatments(cohort, history, cns),
        "labs": labs,
        "relapses": relapses_table(cohort, relapse_rows),
        "mri": mri_table(cohort, draw_mri(cohort, history, relapse_rows, cns, seed)),
        "edss": build_edss(cohort, cns, seed),
        "adverse_events": build_adverse_events(cohort, events, cns, seed),
    }
    for name, table in tables.items():
        assert tuple(table.column_names) == TABLES[name].column_names, name
    return tables
