"""The treatments table: earlier therapies, natalizumab, alemtuzumab courses with their
methylprednisolone premedication, and the rescue therapy of the CNS-inflammation cases."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dmtwatch.model.tables import DRUGS, STOP_REASONS
from dmtwatch.synth import rates as R
from dmtwatch.synth.cns_inflammation import CnsCases
from dmtwatch.synth.cohort import N_COURSES, Cohort
from dmtwatch.synth.days import date_array
from dmtwatch.synth.frames import Columns, concat, floats, ints, ordered_unique, strings
from dmtwatch.synth.history import History

_DOSE = np.array([R.DOSE.get(d, (np.nan, ""))[0] for d in DRUGS])
_UNIT_NAMES = tuple(sorted({unit for _, unit in R.DOSE.values()}))
_UNIT = np.array([_UNIT_NAMES.index(R.DOSE[d][1]) if d in R.DOSE else -1 for d in DRUGS])


def _courses(c: Cohort) -> list[Columns]:
    out = []
    alemtuzumab = DRUGS.index("alemtuzumab")
    steroid = DRUGS.index("methylprednisolone")
    for s in range(N_COURSES):
        p = np.flatnonzero(c.course_given[:, s]).astype(np.int32)
        k = len(p)
        start = c.course_start[p, s]
        out.append(
            {
                "p": p,
                "drug": np.full(k, alemtuzumab, dtype=np.int8),
                "start": start,
                "end": c.course_end[p, s],
                "course": np.full(k, s + 1, dtype=np.int32),
                "dose": np.full(k, np.nan),
                "stop": np.full(k, -1, dtype=np.int8),
            }
        )
        out.append(
            {
                "p": p,
                "drug": np.full(k, steroid, dtype=np.int8),
                "start": start,
                "end": start + R.PREMEDICATION_DAYS - 1,
                "course": np.zeros(k, dtype=np.int32),
                "dose": np.full(k, np.nan),
                "stop": np.full(k, -1, dtype=np.int8),
            }
        )
    return out


def build_treatments(c: Cohort, h: History, cns: CnsCases) -> pa.Table:
    history = {
        "p": h.p,
        "drug": h.drug,
        "start": h.start,
        "end": h.end,
        "course": np.zeros(len(h.p), dtype=np.int32),
        "dose": np.full(len(h.p), np.nan),
        "stop": h.stop,
    }
    rows = concat([history, *_courses(c), cns.treatments()])
    rows["dose"] = np.where(np.isnan(rows["dose"]), _DOSE[rows["drug"]], rows["dose"])
    if len(cns.p):  # plasma exchange has no dose
        rows["dose"][rows["drug"] == DRUGS.index("plasma_exchange")] = np.nan

    keep = rows["start"] <= c.until
    rows = {k: v[keep] for k, v in rows.items()}
    rows = ordered_unique(rows, ("p", "start", "drug"))
    # a therapy still running on `until` has no end date and no stop reason yet
    ended = rows["end"] <= c.until
    rows["stop"] = np.where(ended, rows["stop"], -1)
    dosed = ~np.isnan(rows["dose"])
    return pa.table(
        {
            "patient_id": c.ids.take(pa.array(rows["p"])),
            "drug": strings(DRUGS, rows["drug"]),
            "start_date": date_array(rows["start"]),
            "end_date": date_array(rows["end"], ended),
            "course": ints(rows["course"], rows["course"] > 0),
            "dose": floats(rows["dose"]),
            "dose_unit": strings(_UNIT_NAMES, np.where(dosed, _UNIT[rows["drug"]], -1)),
            "stop_reason": strings(STOP_REASONS, rows["stop"]),
        }
    )
