"""The labs table as a clinic exports it: which tests each visit has, in which unit, with
or without the laboratory's own range, and which results went missing.

Vectorised over chunks of visits (all patients at once, no loop per patient or row). The
output's text columns are dictionary encoded (patient_id, test, value, unit): 20M rows
cost a few integers each, and the CSV writer turns them into text without formatting a
number twice.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dmtwatch.synth import rates as R
from dmtwatch.synth.cohort import Cohort
from dmtwatch.synth.days import date_array
from dmtwatch.synth.history import History
from dmtwatch.synth.lab_schedule import Visits, schedule_visits
from dmtwatch.synth.lab_values import (
    URINE_BLOOD,
    LabEvents,
    Traits,
    VisitValues,
    detect_events,
    draw_traits,
    visit_values,
)
from dmtwatch.synth.streams import stream

TESTS = (
    "lymphocytes",
    "leukocytes",
    "neutrophils",
    "platelets",
    "creatinine",
    "urine_rbc",
    "urine_blood",
    "urine_protein",
    "upcr",
    "tsh",
    "free_t4",
    "tpo_ab",
    "alt",
    "ast",
    "bilirubin",
    "jcv_index",
)
COUNTS = ("lymphocytes", "leukocytes", "neutrophils", "platelets")
UNITS = (
    "10*9/L",
    "10*3/uL",
    "cells/uL",
    "umol/L",
    "mg/dL",
    "m[IU]/L",
    "mIU/L",
    "pmol/L",
    "[IU]/mL",
    "U/L",
    "/[HPF]",
    "g/L",
    "{index}",
    "mg/mmol",
)
# the sample/panel each test comes from (results go missing a panel at a time)
PANEL_OF = {
    **dict.fromkeys(COUNTS, 0),
    "creatinine": 1,
    **dict.fromkeys(("urine_rbc", "urine_blood", "urine_protein", "upcr"), 2),
    **dict.fromkeys(("tsh", "free_t4", "tpo_ab"), 3),
    **dict.fromkeys(("alt", "ast", "bilirubin"), 4),
    "jcv_index": 5,
}
PANELS = 6
# unit and decimals of the tests always reported in one unit
FIXED_UNIT = {
    "free_t4": ("pmol/L", 1),
    "tpo_ab": ("[IU]/mL", 0),
    "alt": ("U/L", 0),
    "ast": ("U/L", 0),
    "bilirubin": ("umol/L", 0),
    "urine_rbc": ("/[HPF]", 0),
    "urine_protein": ("g/L", 2),
    "upcr": ("mg/mmol", 1),
    "jcv_index": ("{index}", 2),
}


class _Result:
    """One test's column over a chunk of visits: value, decimals, unit."""

    def __init__(self, m: int, value: np.ndarray, unit: str, decimals: int) -> None:
        self.value = value
        self.decimals = np.full(m, decimals, dtype=np.int32)
        self.unit = np.full(m, UNITS.index(unit), dtype=np.int8)


def _range_table() -> tuple[np.ndarray, np.ndarray]:
    """Reference limits by [test, unit, site, sex], in that unit (NaN: none).

    The last unit slot stands for "no unit" and the last entry of the flattened table
    for "no range on this report"."""
    shape = (len(TESTS), len(UNITS) + 1, 2, 2)
    low, high = np.full(shape, np.nan), np.full(shape, np.nan)
    scale = {"10*9/L": 1.0, "10*3/uL": 1.0, "cells/uL": 1000.0, "m[IU]/L": 1.0, "mIU/L": 1.0}
    for test, sites in R.REFERENCE_RANGES.items():
        t = TESTS.index(test)
        units = scale if test in COUNTS or test == "tsh" else {FIXED_UNIT[test][0]: 1.0}
        for unit, factor in units.items():
            if test == "tsh" and unit not in ("m[IU]/L", "mIU/L"):
                continue
            if test in COUNTS and unit not in ("10*9/L", "10*3/uL", "cells/uL"):
                continue
            for site, (lo, hi) in enumerate(sites):
                u = UNITS.index(unit)
                low[t, u, site] = np.nan if lo is None else lo * factor
                high[t, u, site] = np.nan if hi is None else hi * factor
    t = TESTS.index("creatinine")
    for unit, table in (("umol/L", R.CREATININE_RANGES_UMOL), ("mg/dL", R.CREATININE_RANGES_MG_DL)):
        for site, by_sex in enumerate(table):
            for sex, (lo, hi) in enumerate(by_sex):
                low[t, UNITS.index(unit), site, sex] = lo
                high[t, UNITS.index(unit), site, sex] = hi
    return np.append(low.ravel(), np.nan), np.append(high.ravel(), np.nan)


RANGE_LOW, RANGE_HIGH = _range_table()
NO_RANGE = len(RANGE_LOW) - 1


def _results(c: Cohort, v: Visits, lv: VisitValues, rng: np.random.Generator) -> dict[str, _Result]:
    """Every numeric test at every visit, in the unit its laboratory reports it in."""
    m = len(v)
    out: dict[str, _Result] = {}

    # counts: one analyser per visit; ~10% in cells/uL (x1000)
    u = rng.random(m)
    cells = u < R.COUNT_IN_CELLS_PER_UL
    other_spelling = ~cells & (u < R.COUNT_IN_CELLS_PER_UL + R.COUNT_SPELLED_10_3_UL)
    for test in COUNTS:
        r = _Result(m, lv.values[test], "10*9/L", 0 if test == "platelets" else 2)
        r.unit[other_spelling] = UNITS.index("10*3/uL")
        r.unit[cells] = UNITS.index("cells/uL")
        r.value = np.where(cells, r.value * 1000.0, r.value)
        r.decimals[cells] = 0
        out[test] = r

    # creatinine: ~10% in mg/dL (S27 factor 88.42)
    mg = rng.random(m) < R.CREATININE_IN_MG_DL
    r = _Result(m, lv.values["creatinine"], "umol/L", 0)
    r.value = np.where(mg, r.value / R.CREATININE_PER_MG_DL, r.value)
    r.unit[mg] = UNITS.index("mg/dL")
    r.decimals[mg] = 2
    out["creatinine"] = r

    r = _Result(m, lv.values["tsh"], "m[IU]/L", 2)
    r.unit[rng.random(m) < R.TSH_SPELLED_MIU_L] = UNITS.index("mIU/L")
    r.decimals[r.value < 0.1] = 3
    out["tsh"] = r

    for test, (unit, decimals) in FIXED_UNIT.items():
        out[test] = _Result(m, lv.values[test], unit, decimals)
    out["jcv_index"].unit[rng.random(m) < R.JCV_WITHOUT_UNIT] = -1
    return out


def _panels(
    c: Cohort, v: Visits, lv: VisitValues, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Which tests each visit orders (before any result goes missing).

    Every alemtuzumab visit (baseline and monthly) has the blood count, creatinine, liver
    tests and a urinalysis with microscopy; patients at strip sites have the strip too,
    and a few strip-tested samples never go for microscopy. The urine protein:creatinine
    ratio is measured once, at the baseline before course 1."""
    m, p = len(v), v.p
    alem = v.seg >= 0
    baseline = alem & (v.k == 0)
    strip = alem & c.dipstick[p]
    no_microscopy = strip & (rng.random(m) < R.URINE_MICROSCOPY_NOT_SENT)
    quarterly = baseline | (alem & (v.k % R.QUARTERLY_EVERY == 0))
    free_t4 = baseline | (
        quarterly & ((rng.random(m) < R.FREE_T4_SHARE) | lv.thyroid_abnormal | lv.thyroid_event)
    )
    tpo = baseline | (alem & (v.k % R.TPO_EVERY == 0) & (rng.random(m) < R.TPO_SHARE))
    tpo |= lv.thyroid_event
    monthly = (*COUNTS, "creatinine", "urine_protein", "alt", "ast", "bilirubin")
    panel = dict.fromkeys(monthly, alem)
    panel |= {
        "tsh": quarterly,
        "urine_rbc": alem & ~no_microscopy,
        "urine_blood": strip,
        "upcr": baseline & (v.seg == 0),
        "free_t4": free_t4,
        "tpo_ab": tpo,
        "jcv_index": v.seg < 0,
    }
    return panel


_POW10 = 10.0 ** np.arange(4)


def _value_keys(value: np.ndarray, decimals: np.ndarray) -> np.ndarray:
    """A number as an exact integer key: mantissa * 4 + decimals (decimals 0-3)."""
    return (np.rint(value * _POW10[decimals]) * 4 + decimals).astype(np.int32)


def _value_text(keys: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    """Dictionary indices and texts for value keys (negative keys: urine_blood answers).

    Keys that print the same ("1.50" and "1.5") share one entry, so the dictionary
    holds each text once."""
    encoded = pc.dictionary_encode(pa.array(keys))
    unique = encoded.dictionary.to_numpy()
    mantissa, decimals = unique >> 2, unique & 3
    numbers = mantissa / _POW10[decimals]
    text = pc.cast(pa.array(numbers), pa.string()).to_numpy(zero_copy_only=False).astype(object)
    qualitative = unique < 0
    text[qualitative] = [URINE_BLOOD[-k - 1] for k in unique[qualitative]]
    texts, first, inverse = np.unique(text.astype(str), return_index=True, return_inverse=True)
    order = np.argsort(first)  # keep first-seen order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    indices = rank[inverse].astype(np.int32)[encoded.indices.to_numpy()]
    return indices, pa.array(texts[order], type=pa.string())


CHUNK = 65_536  # visits drawn at a time (fixed: the draws depend on it)


def _chunk_rows(
    c: Cohort, h: History, tr: Traits, ev: LabEvents, v: Visits, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The result rows of a chunk of visits, in visit order and TESTS order within one.

    Rows are kept small (visit, test, value key, unit, range code); the patient, date and
    reference limits are looked up once at the end."""
    m = len(v)
    lv = visit_values(c, h, tr, ev, v, rng)
    results = _results(c, v, lv, rng)
    panels = _panels(c, v, lv, rng)
    with_range = rng.random(m) < R.WITH_REFERENCE_RANGE
    site_sex = c.lab_site[v.p].astype(np.int32) * 2 + ~c.female[v.p]

    # (visit, test) matrices: selecting with the C-order mask yields the row order
    shape = (m, len(TESTS))
    present = np.empty(shape, dtype=bool)
    key = np.empty(shape, dtype=np.int32)
    unit = np.full(shape, -1, dtype=np.int8)
    ranges = np.full(shape, NO_RANGE, dtype=np.int32)
    # a missed result is a missed sample: the whole panel it belongs to goes missing
    kept = rng.random((PANELS, m)) >= R.RESULT_MISSING
    for t, test in enumerate(TESTS):
        present[:, t] = panels[test] & (kept[PANEL_OF[test]] | lv.protected.get(test, False))
        if test == "urine_blood":
            key[:, t] = -1 - lv.urine_blood
            continue
        r = results[test]
        key[:, t] = _value_keys(r.value, r.decimals)
        unit[:, t] = r.unit
        unit_slot = np.where(r.unit < 0, len(UNITS), r.unit).astype(np.int32)
        code = (t * (len(UNITS) + 1) + unit_slot) * 4 + site_sex
        ranges[:, t] = np.where(with_range, code, NO_RANGE)
    return {
        "visit": np.nonzero(present)[0].astype(np.int32),
        "test": np.broadcast_to(np.arange(len(TESTS), dtype=np.int8), shape)[present],
        "key": key[present],
        "unit": unit[present],
        "range": ranges[present],
    }


def build_labs(c: Cohort, h: History, seed: int) -> tuple[pa.Table, LabEvents]:
    rng = stream(seed, "labs")
    v = schedule_visits(c, h, rng)
    tr = draw_traits(c, rng)
    ev = detect_events(c, v, rng)
    parts = []
    for start in range(0, max(len(v), 1), CHUNK):
        part = _chunk_rows(c, h, tr, ev, v.slice(start, start + CHUNK), rng)
        part["visit"] += start
        parts.append(part)
    rows = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    del parts
    value_index, value_text = _value_text(rows["key"])
    unit, ranges = rows["unit"], rows["range"]
    table = pa.table(
        {
            "patient_id": pa.DictionaryArray.from_arrays(pa.array(v.p[rows["visit"]]), c.ids),
            "date": date_array(v.day[rows["visit"]]),
            "test": pa.DictionaryArray.from_arrays(pa.array(rows["test"]), pa.array(TESTS)),
            "value": pa.DictionaryArray.from_arrays(pa.array(value_index), value_text),
            "unit": pa.DictionaryArray.from_arrays(pa.array(unit, mask=unit < 0), pa.array(UNITS)),
            "ref_low": pa.array(RANGE_LOW[ranges], from_pandas=True),
            "ref_high": pa.array(RANGE_HIGH[ranges], from_pandas=True),
        }
    )
    return table, ev
