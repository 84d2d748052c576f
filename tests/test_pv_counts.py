"""The sparse count of reports held as drug and event sets (FAERS's shape) against the
row-wise SQL count of the same reports as a long table: the same pairs, n, margins, N and
expected counts, crude and stratified, on random reports with repeated mentions, reports
with several drugs and events, reports lacking drugs or events, missing stratum values
and two codes of one name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dmtwatch.pv.counts import count_pairs
from dmtwatch.pv.faers import COLUMNS, read_faers
from dmtwatch.pv.report_sets import ReportSets
from dmtwatch.pv.signals import detect
from dmtwatch.pv.synth_reports import generate_report_sets, generate_reports
from dmtwatch.pv.trend import quarterly_trend

KEY = ["drug", "event"]
EXACT = ["n", "n_drug", "n_event", "n_total"]


def _random_sets(seed: int, n_reports: int = 400) -> ReportSets:
    """Reports with 0-4 drug and 0-4 event mentions drawn with repeats from small,
    skewed vocabularies; strata with a missing value; a drug name given two codes."""
    rng = np.random.default_rng(seed)
    kd = rng.choice(5, size=n_reports, p=[0.05, 0.45, 0.25, 0.15, 0.10])
    ke = rng.choice(5, size=n_reports, p=[0.05, 0.35, 0.30, 0.20, 0.10])
    n_drugs, n_events = 25, 40
    drug = (rng.zipf(1.6, size=kd.sum()) - 1) % n_drugs
    event = (rng.zipf(1.4, size=ke.sum()) - 1) % n_events
    drug_names = [f"DRUG{i:02d}" for i in range(n_drugs)]
    drug_names[7] = "DRUG03"  # two codes, one name: counted as one drug
    order = rng.permutation(n_reports)  # mentions in no particular order
    sex = rng.choice(["F", "M", None], size=n_reports, p=[0.5, 0.4, 0.1])
    age = rng.choice(["<18", "18-44", "45-64", "unknown"], size=n_reports)
    reports = pa.table(
        {
            "report_id": [f"R{i}" for i in range(n_reports)],
            "sex": pa.array(sex.tolist(), pa.string()).dictionary_encode(),
            "age_group": pa.array(age.tolist(), pa.string()),
        }
    )
    drug_report = np.repeat(order, kd).astype(np.int32)
    event_report = np.repeat(order, ke).astype(np.int32)
    shuffle_d, shuffle_e = rng.permutation(drug.size), rng.permutation(event.size)
    return ReportSets(
        reports,
        drug_report[shuffle_d],
        drug.astype(np.int32)[shuffle_d],
        event_report[shuffle_e],
        event.astype(np.int32)[shuffle_e],
        pa.array(drug_names),
        pa.array([f"EVENT{i:02d}" for i in range(n_events)]),
    )


def _long_by_hand(sets: ReportSets) -> pa.Table:
    """Each report's drug rows joined to its event rows (repeats kept, as FAERS's DRUG and
    REAC join gives them), with the strata: built with pandas, not with ReportSets."""
    reports = sets.reports.to_pandas()
    reports["row"] = np.arange(len(reports))
    drugs = pd.DataFrame({"row": sets.drug_report, "drug": sets.drug_names.take(sets.drug)})
    events = pd.DataFrame({"row": sets.event_report, "event": sets.event_names.take(sets.event)})
    rows = drugs.merge(events, on="row").merge(reports, on="row").drop(columns="row")
    rows = rows.sample(frac=1.0, random_state=0)  # row order must not matter
    rows["sex"] = rows["sex"].astype(object)
    return pa.Table.from_pandas(rows[sets.column_names], preserve_index=False)


def _frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas().sort_values(KEY).reset_index(drop=True)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("strata", [None, ["sex"], ["sex", "age_group"]])
def test_sparse_count_equals_the_row_wise_count(seed: int, strata: list[str] | None) -> None:
    sets = _random_sets(seed)
    long = _long_by_hand(sets)
    assert long.num_rows > len(long.to_pandas()[["report_id", *KEY]].drop_duplicates())
    by_rows, n_rows = count_pairs(long, strata)
    by_sets, n_sets = count_pairs(sets, strata)
    assert n_sets == n_rows
    assert by_sets.column_names == by_rows.column_names
    a, b = _frame(by_rows), _frame(by_sets)
    pd.testing.assert_frame_equal(a[KEY + EXACT], b[KEY + EXACT], check_dtype=False)
    np.testing.assert_allclose(b["expected"], a["expected"], rtol=1e-12)
    # and the sets come out already in (drug, event) order, as the SQL orders them
    assert by_sets.select(KEY).equals(by_rows.select(KEY))


def test_reports_lacking_drugs_or_events_are_not_counted() -> None:
    sets = _random_sets(1)
    has_drug = np.isin(np.arange(sets.num_reports), sets.drug_report)
    has_event = np.isin(np.arange(sets.num_reports), sets.event_report)
    assert (~has_drug).any() and (~has_event).any()
    _, n_total = count_pairs(sets)
    assert n_total == int((has_drug & has_event).sum())


def test_to_table_is_the_unique_cross_product() -> None:
    sets = _random_sets(2)
    by_hand = _long_by_hand(sets).to_pandas().drop_duplicates()
    table = sets.to_table()
    assert table.column_names == sets.column_names
    assert table.num_rows == len(by_hand)
    key = ["report_id", *KEY]
    got = table.to_pandas()[key].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, by_hand[key].sort_values(key).reset_index(drop=True))
    keep = np.zeros(sets.num_reports, dtype=bool)
    keep[::3] = True
    part = sets.to_table(keep).to_pandas()
    assert set(part["report_id"]) == set(np.asarray(sets.reports["report_id"])[keep]) & set(
        table.to_pandas()["report_id"]
    )


def test_detect_gives_the_same_signals_from_sets_and_from_rows() -> None:
    """Synthetic reports, both shapes of the same draw: every measure and the prior agree."""
    sets = generate_report_sets(20_000, seed=4, n_drugs=400, n_events=600)
    rows = generate_reports(20_000, seed=4, n_drugs=400, n_events=600)
    for strata in (None, ["sex"]):
        a, b = detect(rows, strata=strata), detect(sets, strata=strata)
        assert a.n_reports == b.n_reports and a.pairs.num_rows == b.pairs.num_rows
        assert a.prior.neg_log_likelihood == pytest.approx(b.prior.neg_log_likelihood, rel=1e-9)
        x, y = a.pairs.to_pandas(), b.pairs.to_pandas()
        assert (
            (x[[*KEY, "n", "n_drug", "n_event"]] == y[[*KEY, "n", "n_drug", "n_event"]]).all().all()
        )
        for column in ("expected", "prr", "ror_lo", "ic025", "ebgm", "eb05", "eb95"):
            np.testing.assert_allclose(y[column], x[column], rtol=1e-6, err_msg=column)


SAMPLES = Path(__file__).parents[2] / "shared" / "data" / "faers-sample"


@pytest.mark.skipif(
    not (SAMPLES / "2017q2" / "DEMO17Q2.txt").exists(),
    reason=f"the FAERS samples are not at {SAMPLES} (../shared/data beside the repository)",
)
@pytest.mark.parametrize("strata", [None, ["sex", "age_group"], ["quarter"]])
def test_faers_samples_count_the_same_as_sets_and_as_rows(strata: list[str] | None) -> None:
    sets, _, summary = read_faers([SAMPLES], roles=None)
    assert isinstance(sets, ReportSets) and sets.column_names == list(COLUMNS)
    long = sets.to_table()
    assert long.num_rows == summary["rows"] and sets.num_reports == summary["reports_with_rows"]
    by_rows, n_rows = count_pairs(long, strata)
    by_sets, n_sets = count_pairs(sets, strata)
    assert n_sets == n_rows == sets.num_reports
    assert by_sets.select([*KEY, *EXACT]).equals(by_rows.select([*KEY, *EXACT]))
    np.testing.assert_allclose(by_sets["expected"], by_rows["expected"], rtol=1e-12)


def test_quarterly_trend_is_the_same_from_sets_and_from_rows() -> None:
    sets = generate_report_sets(5000, seed=3, n_drugs=200, n_events=300)
    long = sets.to_table()
    pairs = list(zip(long["drug"].to_pylist()[:7], long["event"].to_pylist()[:7], strict=True))
    assert quarterly_trend(sets, pairs).equals(quarterly_trend(long, pairs))
