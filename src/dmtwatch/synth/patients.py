"""The patients table: pseudonymous id, sex, birth date (some only as YYYY-MM or YYYY, as
the contract allows), MS type and onset."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dmtwatch.synth.cohort import Cohort
from dmtwatch.synth.days import date_array


def build_patients(c: Cohort) -> pa.Table:
    full = pc.strftime(date_array(c.birth), "%Y-%m-%d")
    cut = np.array([10, 7, 4], dtype=np.int64)[c.birth_precision]
    birth = pc.utf8_slice_codeunits(full, 0, 10)
    birth = pc.if_else(
        pa.array(cut == 10),
        birth,
        pc.if_else(
            pa.array(cut == 7),
            pc.utf8_slice_codeunits(full, 0, 7),
            pc.utf8_slice_codeunits(full, 0, 4),
        ),
    )
    return pa.table(
        {
            "patient_id": c.ids,
            "sex": pa.array(np.where(c.female, "F", "M")),
            "birth_date": pc.if_else(pa.array(c.birth <= c.until), birth, None),
            "ms_type": pa.array(np.where(c.spms, "SPMS", "RRMS")),
            "ms_onset_date": date_array(c.onset, c.onset <= c.until),
        }
    )
