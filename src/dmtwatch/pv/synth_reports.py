"""Synthetic FAERS-like spontaneous reports for benchmarks and tests of signal detection.

One row per (report_id, drug, event): the cross product of a report's suspect drugs and
its reactions, as the FAERS DRUG x REAC tables give after the role filter
(``generate_reports``); or the same reports as ``read_faers`` gives them, each report's
drugs and events apart (``generate_report_sets``), the input the benchmark counts. The shape is
drawn to look like the real database, at any size and without a Python loop per report:

* drugs per report 1-6 (suspect drugs; mean ~2.1), reactions per report 1-5 (mean ~2.5),
  so ~5.1 rows per report: 20M reports are ~100M rows, ~1.7 GiB as Arrow (int64 report
  ids, dictionary-encoded drug/event/sex/quarter with int32/int8 indices). (Real FAERS:
  ~18M reports, ~74M drug rows of all roles, ~1.3-1.5 suspect drugs and ~3 reactions per
  report; the suspect count is set a little higher here so that the cross product is a
  harder test, and the reactions a little lower to keep 20M reports in memory.)
* drug and reaction frequencies are Zipf-Mandelbrot, weight 1 / (rank + q)^s: a few
  very common products and preferred terms and a long tail of rare ones (at 1M reports
  the top drug is in ~4% of reports and the top event in ~6%, while the median drug is
  in ~19 reports and a third of the drugs, half of the events, in 10 or fewer);
* events depend on drugs in the background, as in FAERS (indications, class effects):
  events fall into 27 groups (like MedDRA's system organ classes) and a report's groups
  follow its first drug, by a factor per drug class and group and one per drug and group
  (log-normal), so relative rates spread around 1 and the fitted GPS prior is a broad
  two-component mixture rather than a spike at 1; co-suspect drugs inherit the first
  drug's profile (the "innocent bystander" confounding of real data);
* the frequencies differ mildly by sex (a log-normal factor per item and sex), so
  stratifying by ``sex`` changes the expected counts a little, as it does in FAERS;
* ``quarter`` runs 2004Q1..2022Q4 with the volume growing ~6x over the period, and
  report ids increase with the quarter;
* ~2-3% of the rows are duplicates (the same drug or event drawn twice for a report),
  which counting on unique reports must remove, as FAERS lists a drug twice under two
  roles;
* ``N_SIGNALS`` true associations are injected: for each, a report naming the drug has
  its first reaction replaced by the associated event with probability ``rate`` (2-20%),
  so these pairs have a real excess (their relative rate is ~5 to several hundred).
  ``injected_pairs`` lists them; they are also in the table's schema metadata under
  ``dmtwatch.injected`` (JSON).

Deterministic for a given (n_reports, seed, n_drugs, n_events): the model (weights,
injected pairs) depends on (seed, n_drugs, n_events) only, the reports on all four.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dmtwatch.pv.report_sets import ReportSets

FIRST_YEAR, LAST_YEAR = 2004, 2022
QUARTERS: tuple[str, ...] = tuple(
    f"{y}Q{q}" for y in range(FIRST_YEAR, LAST_YEAR + 1) for q in range(1, 5)
)
SEXES: tuple[str, ...] = ("F", "M", "UNK")
SEX_SHARE = (0.58, 0.35, 0.07)  # FAERS: ~60% female, ~35% male, the rest not given
DRUGS_PER_REPORT = (0.45, 0.27, 0.14, 0.07, 0.04, 0.03)  # P(1..6), mean 2.07
EVENTS_PER_REPORT = (0.32, 0.25, 0.19, 0.14, 0.10)  # P(1..5), mean 2.45
DRUG_ZIPF = (2.0, 60.0)  # (s, q) of 1 / (rank + q)^s
EVENT_ZIPF = (1.8, 30.0)
QUARTER_GROWTH = 0.025  # per quarter: exp(0.025 * 75) ~ 6.5x from 2004Q1 to 2022Q4
SEX_SPREAD = 0.5  # sd of the log factor by which an item's frequency differs by sex
EVENT_GROUPS = 27  # like MedDRA's system organ classes
DRUG_CLASSES = 60
CLASS_SPREAD = 0.8  # sd of the log factor of an event group's frequency, by drug class
DRUG_SPREAD = 0.5  # the same, by drug on top of its class
N_SIGNALS = 50
SIGNAL_DRUG_RANKS = (5, 300)  # injected drugs are among these frequency ranks
SIGNAL_EVENT_RANKS = (20, 2000)
SIGNAL_RATE = (0.02, 0.20)  # log-uniform
CHUNK = 1_000_000  # reports generated at a time (bounds the temporaries)
METADATA_KEY = b"dmtwatch.injected"


@dataclass(frozen=True)
class InjectedPair:
    drug: str
    event: str
    rate: float  # P(a report naming the drug has the event put in)


@dataclass(frozen=True)
class _Model:
    drug_alias: tuple[np.ndarray, np.ndarray]  # (keep, alias), shape (sex, drug code)
    group_alias: tuple[np.ndarray, np.ndarray]  # shape (drug code, event group)
    event_alias: tuple[np.ndarray, np.ndarray]  # shape (sex, position in event_order)
    event_order: np.ndarray  # event codes sorted by group
    group_start: np.ndarray  # each group's first position in event_order, and the end
    signal_of_drug: np.ndarray  # drug code -> index into the signals, or -1
    signal_event: np.ndarray  # event code per signal
    signal_rate: np.ndarray
    drug_names: pa.Array
    event_names: pa.Array
    injected: tuple[InjectedPair, ...]


def _alias(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table (Vose's construction) for drawing i with probability p[i]:
    draw i uniformly, keep it with probability keep[i], else take alias[i]. O(1) a draw."""
    n = p.size
    scaled = p * (n / p.sum())
    keep = np.ones(n)
    alias = np.arange(n, dtype=np.int32)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large[-1]
        keep[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        if scaled[g] < 1.0:
            small.append(large.pop())
    return keep, alias


def _aliases(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One alias table per row of p."""
    tables = [_alias(row) for row in p]
    return np.stack([t[0] for t in tables]), np.stack([t[1] for t in tables])


def _zipf_weights(
    rng: np.random.Generator, n: int, s: float, q: float
) -> tuple[np.ndarray, np.ndarray]:
    """Zipf-Mandelbrot weights by code (codes shuffled), and the codes by frequency rank."""
    by_rank = rng.permutation(n).astype(np.int32)  # by_rank[r] = code of the r-th commonest
    weight = np.empty(n)
    weight[by_rank] = 1.0 / (np.arange(1, n + 1) + q) ** s
    return weight, by_rank


def _names(prefix: str, n: int) -> pa.Array:
    return pa.array([f"{prefix}{i:06d}" for i in range(n)], pa.string())


@functools.lru_cache(maxsize=8)
def _model(seed: int, n_drugs: int, n_events: int) -> _Model:
    if n_drugs < 2 or n_events < 2:
        raise ValueError("n_drugs and n_events must be at least 2")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    n_sex = len(SEXES)

    drug_w, drug_rank = _zipf_weights(rng, n_drugs, *DRUG_ZIPF)
    drug_sex = np.exp(rng.normal(0.0, SEX_SPREAD, size=(n_sex, n_drugs)))
    drug_alias = _aliases(drug_w * drug_sex)

    # events: Zipf weights, differing by sex, within groups (system organ classes)
    event_w, event_rank = _zipf_weights(rng, n_events, *EVENT_ZIPF)
    group = rng.integers(0, EVENT_GROUPS, size=n_events)
    event_order = np.argsort(group, kind="stable").astype(np.int32)
    group_start = np.searchsorted(group[event_order], np.arange(EVENT_GROUPS + 1))
    event_sex = np.exp(rng.normal(0.0, SEX_SPREAD, size=(n_sex, n_events)))
    within = (event_w * event_sex)[:, event_order]
    keep = np.ones((n_sex, n_events))
    alias = np.zeros((n_sex, n_events), dtype=np.int32)
    for g in range(EVENT_GROUPS):
        lo, hi = group_start[g], group_start[g + 1]
        if hi > lo:
            k, a = _aliases(within[:, lo:hi])
            keep[:, lo:hi], alias[:, lo:hi] = k, a + lo
    event_alias = (keep, alias)

    # the background dependence of events on drugs: a report's event groups follow its
    # first drug, by a class-wide and a drug's own log factor per group
    share = np.bincount(group, weights=event_w, minlength=EVENT_GROUPS)
    drug_class = rng.integers(0, DRUG_CLASSES, size=n_drugs)
    class_effect = rng.normal(0.0, CLASS_SPREAD, size=(DRUG_CLASSES, EVENT_GROUPS))
    own_effect = rng.normal(0.0, DRUG_SPREAD, size=(n_drugs, EVENT_GROUPS))
    group_alias = _aliases(share * np.exp(class_effect[drug_class] + own_effect))

    lo, hi = (min(r, n_drugs) for r in SIGNAL_DRUG_RANKS)
    lo = min(lo, hi - 1)
    k = min(N_SIGNALS, hi - lo)
    drugs = drug_rank[rng.choice(np.arange(lo, hi), size=k, replace=False)]
    elo, ehi = (min(r, n_events) for r in SIGNAL_EVENT_RANKS)
    elo = min(elo, ehi - 1)
    events = event_rank[rng.integers(elo, ehi, size=k)]
    rates = np.exp(rng.uniform(np.log(SIGNAL_RATE[0]), np.log(SIGNAL_RATE[1]), size=k))
    signal_of_drug = np.full(n_drugs, -1, dtype=np.int32)
    signal_of_drug[drugs] = np.arange(k, dtype=np.int32)
    injected = tuple(
        InjectedPair(f"D{d:06d}", f"E{e:06d}", float(r))
        for d, e, r in zip(drugs, events, rates, strict=True)
    )
    return _Model(
        drug_alias, group_alias, event_alias, event_order, group_start,
        signal_of_drug, events.astype(np.int32), rates,
        _names("D", n_drugs), _names("E", n_events), injected,
    )  # fmt: skip


def injected_pairs(seed: int, n_drugs: int = 5000, n_events: int = 8000) -> list[InjectedPair]:
    """The drug-event pairs given an excess in ``generate_reports`` with the same arguments."""
    return list(_model(seed, n_drugs, n_events).injected)


def _pick(
    rng: np.random.Generator, table: tuple[np.ndarray, np.ndarray], row: np.ndarray
) -> np.ndarray:
    """One column index per element of ``row``, from the alias table's row ``row``."""
    keep, alias = table
    width = keep.shape[1]
    i = rng.integers(0, width, size=row.size, dtype=np.int32)
    flat = row.astype(np.int32) * width + i
    return np.where(rng.random(row.size) < keep.ravel()[flat], i, alias.ravel()[flat])


def _events(
    rng: np.random.Generator, model: _Model, first_drug: np.ndarray, sex: np.ndarray
) -> np.ndarray:
    """One event code per slot: its group given the report's first drug, then the event
    within the group given the report's sex."""
    group = _pick(rng, model.group_alias, first_drug)
    lo = model.group_start[group]
    size = model.group_start[group + 1] - lo
    pos = lo + (rng.random(group.size) * size).astype(np.int64)
    keep, alias = model.event_alias
    flat = sex.astype(np.int64) * keep.shape[1] + pos
    pos = np.where(rng.random(group.size) < keep.ravel()[flat], pos, alias.ravel()[flat])
    return model.event_order[pos]


@dataclass(frozen=True)
class _Drawn:
    """One chunk of reports as drawn: per report its sex and quarter, its drug and event
    slots (consecutive per report, ``kd`` and ``ke`` of them)."""

    sex: np.ndarray
    quarter: np.ndarray
    kd: np.ndarray
    ke: np.ndarray
    drug_slots: np.ndarray
    event_slots: np.ndarray


def _draw(model: _Model, rng: np.random.Generator, quarter: np.ndarray) -> _Drawn:
    n = quarter.size
    sex = rng.choice(len(SEXES), size=n, p=SEX_SHARE).astype(np.int8)
    kd = (rng.choice(len(DRUGS_PER_REPORT), size=n, p=DRUGS_PER_REPORT) + 1).astype(np.int32)
    ke = (rng.choice(len(EVENTS_PER_REPORT), size=n, p=EVENTS_PER_REPORT) + 1).astype(np.int32)
    e_off = np.zeros(n, dtype=np.int32)  # each report's first slot among event_slots
    np.cumsum(ke[:-1], out=e_off[1:])

    d_off = np.zeros(n, dtype=np.int32)
    np.cumsum(kd[:-1], out=d_off[1:])

    drug_slots = _pick(rng, model.drug_alias, np.repeat(sex, kd))
    event_slots = _events(rng, model, np.repeat(drug_slots[d_off], ke), np.repeat(sex, ke))
    report_of_slot = np.repeat(np.arange(n, dtype=np.int32), kd)

    # true associations: a report naming a signal drug gets the drug's event, sometimes
    sig = model.signal_of_drug[drug_slots]
    hit = np.flatnonzero(sig >= 0)
    hit = hit[rng.random(hit.size) < model.signal_rate[sig[hit]]]
    event_slots[e_off[report_of_slot[hit]]] = model.signal_event[sig[hit]]
    return _Drawn(sex, quarter, kd, ke, drug_slots, event_slots)


def _chunk(
    model: _Model, rng: np.random.Generator, first_id: int, quarter: np.ndarray
) -> pa.RecordBatch:
    drawn = _draw(model, rng, quarter)
    kd, ke, sex = drawn.kd, drawn.ke, drawn.sex
    e_off = np.zeros(kd.size, dtype=np.int32)
    np.cumsum(ke[:-1], out=e_off[1:])
    report_of_slot = np.repeat(np.arange(kd.size, dtype=np.int32), kd)

    # the cross product: each drug slot gives a block of rows, one per event of its report
    block = ke[report_of_slot]
    rows = int(block.sum())
    block_start = np.zeros(block.size, dtype=np.int32)
    np.cumsum(block[:-1], out=block_start[1:])
    drug_code = np.repeat(drawn.drug_slots, block)
    event_index = np.repeat(e_off[report_of_slot] - block_start, block)
    event_index += np.arange(rows, dtype=np.int32)
    event_code = drawn.event_slots[event_index]
    report = np.repeat(report_of_slot, block)
    del event_index, block_start

    return pa.RecordBatch.from_arrays(
        [
            pa.array(report.astype(np.int64) + first_id),
            pa.DictionaryArray.from_arrays(pa.array(drug_code), model.drug_names),
            pa.DictionaryArray.from_arrays(pa.array(event_code), model.event_names),
            pa.DictionaryArray.from_arrays(pa.array(sex[report]), pa.array(SEXES)),
            pa.DictionaryArray.from_arrays(pa.array(quarter[report]), pa.array(QUARTERS)),
        ],
        names=["report_id", "drug", "event", "sex", "quarter"],
    )


def _chunks(n_reports: int, seed: int) -> Iterator[tuple[np.random.Generator, int, np.ndarray]]:
    """Per chunk of reports: its random generator, its first report (from 0), its quarters."""
    if n_reports < 1:
        raise ValueError("n_reports must be at least 1")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1, n_reports]))
    growth = np.exp(QUARTER_GROWTH * np.arange(len(QUARTERS)))
    quarter = np.sort(rng.choice(len(QUARTERS), size=n_reports, p=growth / growth.sum()))
    quarter = quarter.astype(np.int8)
    chunk_seeds = np.random.SeedSequence([seed, 2, n_reports]).spawn(-(-n_reports // CHUNK))
    for i, chunk_seed in enumerate(chunk_seeds):
        lo, hi = i * CHUNK, min((i + 1) * CHUNK, n_reports)
        yield np.random.default_rng(chunk_seed), lo, quarter[lo:hi]


def generate_reports(
    n_reports: int, seed: int, n_drugs: int = 5000, n_events: int = 8000
) -> pa.Table:
    """A FAERS-like table of ``n_reports`` reports, one row per (report_id, drug, event).

    Columns: report_id (int64, 1..n_reports, increasing with the quarter), drug
    ("D000123"), event ("E000456"), sex ("F", "M", "UNK") and quarter ("2004Q1" ..
    "2022Q4"), the four text columns dictionary-encoded (``pyarrow.compute.cast`` or
    ``Table.cast`` them to plain strings if needed). The module docstring describes the
    distributions; the injected associations are in the schema metadata and in
    ``injected_pairs(seed, n_drugs, n_events)``.
    """
    model = _model(seed, n_drugs, n_events)
    batches = [_chunk(model, rng, lo + 1, quarter) for rng, lo, quarter in _chunks(n_reports, seed)]
    table = pa.Table.from_batches(batches)
    injected = [[p.drug, p.event, round(p.rate, 6)] for p in model.injected]
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(injected).encode()})


def generate_report_sets(
    n_reports: int, seed: int, n_drugs: int = 5000, n_events: int = 8000
) -> ReportSets:
    """The reports of ``generate_reports`` with the same arguments, held as FAERS gives
    them: each report's drugs and events apart (:class:`ReportSets`), whose cross product
    per report is that table's rows. Strata: ``sex`` and ``quarter``."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("sex", "quarter", "dr", "d", "er", "e")}
    model = _model(seed, n_drugs, n_events)
    for rng, lo, quarter in _chunks(n_reports, seed):
        drawn = _draw(model, rng, quarter)
        reports = np.arange(lo, lo + quarter.size, dtype=np.int32)
        parts["sex"].append(drawn.sex)
        parts["quarter"].append(drawn.quarter)
        parts["dr"].append(np.repeat(reports, drawn.kd))
        parts["d"].append(drawn.drug_slots.astype(np.int32))
        parts["er"].append(np.repeat(reports, drawn.ke))
        parts["e"].append(drawn.event_slots.astype(np.int32))
    whole = {k: np.concatenate(v) for k, v in parts.items()}
    reports_table = pa.table(
        {
            "report_id": pa.array(np.arange(1, n_reports + 1, dtype=np.int64)),
            "sex": pa.DictionaryArray.from_arrays(pa.array(whole["sex"]), pa.array(SEXES)),
            "quarter": pa.DictionaryArray.from_arrays(
                pa.array(whole["quarter"]), pa.array(QUARTERS)
            ),
        }
    )
    return ReportSets(
        reports_table, whole["dr"], whole["d"], whole["er"], whole["e"],
        model.drug_names, model.event_names,
    )  # fmt: skip
