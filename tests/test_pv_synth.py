"""The synthetic FAERS-like reports (dmtwatch.pv.synth_reports): deterministic, the promised
columns and per-report structure, long-tailed frequencies, and injected associations that
signal detection finds."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dmtwatch.pv import synth_reports
from dmtwatch.pv.counts import count_pairs
from dmtwatch.pv.signals import detect
from dmtwatch.pv.synth_reports import (
    METADATA_KEY,
    QUARTERS,
    generate_reports,
    injected_pairs,
)

N = 20_000


def frame(table: pa.Table) -> pd.DataFrame:
    df = table.to_pandas()
    for name in ("drug", "event", "sex", "quarter"):
        df[name] = df[name].astype(str)
    return df


@pytest.fixture(scope="module")
def reports() -> pa.Table:
    return generate_reports(N, seed=5)


@pytest.fixture(scope="module")
def df(reports: pa.Table) -> pd.DataFrame:
    return frame(reports)


def test_deterministic_per_seed() -> None:
    a = generate_reports(3000, seed=1)
    b = generate_reports(3000, seed=1)
    c = generate_reports(3000, seed=2)
    assert a.equals(b, check_metadata=True)
    assert not a.equals(c)
    assert a.schema.metadata[METADATA_KEY] != c.schema.metadata[METADATA_KEY]


def test_columns_and_types(reports: pa.Table, df: pd.DataFrame) -> None:
    assert reports.column_names == ["report_id", "drug", "event", "sex", "quarter"]
    assert reports.schema.field("report_id").type == pa.int64()
    for name in ("drug", "event", "sex", "quarter"):
        t = reports.schema.field(name).type
        assert pa.types.is_dictionary(t) and pa.types.is_string(t.value_type)
    assert df["drug"].str.fullmatch(r"D\d{6}").all()
    assert df["event"].str.fullmatch(r"E\d{6}").all()
    assert set(df["sex"]) == {"F", "M", "UNK"}
    assert set(df["quarter"]) <= set(QUARTERS)
    assert QUARTERS[0] == "2004Q1" and QUARTERS[-1] == "2022Q4"
    # every report has rows; ids are 1..N; one sex and one quarter per report
    assert sorted(df["report_id"].unique()) == list(range(1, N + 1))
    per_report = df.groupby("report_id")[["sex", "quarter"]].nunique()
    assert (per_report == 1).all().all()


def test_casts_to_plain_strings(reports: pa.Table) -> None:
    plain = reports.cast(
        pa.schema(
            [(f.name, f.type if f.name == "report_id" else pa.string()) for f in reports.schema]
        )
    )
    assert plain.column("drug").to_pylist() == reports.column("drug").to_pylist()


def test_per_report_structure(df: pd.DataFrame) -> None:
    drugs = df.drop_duplicates(["report_id", "drug"]).groupby("report_id").size()
    events = df.drop_duplicates(["report_id", "event"]).groupby("report_id").size()
    assert drugs.between(1, 6).all() and events.between(1, 5).all()
    assert 1.8 < drugs.mean() < 2.3  # suspect drugs per report
    assert 2.1 < events.mean() < 2.7
    assert 4.5 < len(df) / N < 5.6  # rows per report (the cross product)
    # rows are the cross product of each report's drugs and events, up to a few duplicates
    distinct = df.drop_duplicates(["report_id", "drug", "event"])
    assert len(distinct) == int((drugs * events).sum())
    assert 0 < len(df) - len(distinct) < 0.05 * len(df)


def test_strata_and_quarters(reports: pa.Table, df: pd.DataFrame) -> None:
    by_report = df.drop_duplicates("report_id").set_index("report_id")
    share = by_report["sex"].value_counts(normalize=True)
    assert share["F"] == pytest.approx(0.58, abs=0.02)
    assert share["M"] == pytest.approx(0.35, abs=0.02)
    # report ids increase with the quarter; the volume grows over the years
    q = by_report["quarter"].map(QUARTERS.index).to_numpy()
    assert np.all(np.diff(q) >= 0)
    year = by_report["quarter"].str[:4].astype(int).value_counts()
    assert year[2022] > 4 * year[2004]
    # drug frequencies differ by sex, so stratifying changes the expected counts
    crude, _ = count_pairs(reports)
    strat, _ = count_pairs(reports, ["sex"])
    ratio = np.asarray(strat["expected"]) / np.asarray(crude["expected"])
    assert strat["n"].equals(crude["n"])
    assert np.std(np.log(ratio)) > 0.05


@pytest.mark.parametrize("what", ["drug", "event"])
def test_long_tail(df: pd.DataFrame, what: str) -> None:
    counts = (
        df.drop_duplicates(["report_id", what]).groupby(what).size().sort_values(ascending=False)
    )
    top_1pct = counts.iloc[: len(counts) // 100].sum() / counts.sum()
    assert counts.iloc[0] > 0.03 * N  # the commonest is in several % of reports
    assert top_1pct > 0.2  # the top 1% carry a fifth of the mentions or more
    assert (counts <= 3).mean() > 0.5  # and most of those seen are seen rarely
    assert counts.iloc[0] / counts.median() > 200
    # roughly a power law: log count falls steadily with log rank over the head
    rank = np.arange(1, 201)
    slope = np.polyfit(np.log(rank), np.log(counts.iloc[:200].to_numpy()), 1)[0]
    assert -2.5 < slope < -0.5


def test_chunks_join_seamlessly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth_reports, "CHUNK", 1000)
    table = generate_reports(5500, seed=3, n_drugs=300, n_events=400)
    assert table.column("report_id").num_chunks == 6
    ids = table.column("report_id").to_numpy()
    assert np.all(np.diff(ids) >= 0) and ids[0] == 1 and ids[-1] == 5500
    assert len(np.unique(ids)) == 5500
    assert (
        table.unify_dictionaries()
        .column("drug")
        .chunk(0)
        .dictionary.equals(table.column("drug").chunk(5).dictionary)
    )


def test_metadata_lists_the_injected_pairs(reports: pa.Table) -> None:
    listed = json.loads(reports.schema.metadata[METADATA_KEY])
    pairs = injected_pairs(5)
    assert [(d, e) for d, e, _ in listed] == [(p.drug, p.event) for p in pairs]
    assert len(pairs) == synth_reports.N_SIGNALS
    assert len({p.drug for p in pairs}) == len(pairs)
    assert all(0.02 <= p.rate <= 0.2 for p in pairs)
    assert all(re.fullmatch(r"D\d{6}", p.drug) and re.fullmatch(r"E\d{6}", p.event) for p in pairs)


def test_injected_associations_are_detected() -> None:
    """On 20,000 reports over 500 drugs and 1,000 events (a small universe, so that each
    injected drug has the reports it would have in a larger database), the injected pairs
    with some data stand out by IC025 and EB05 and the others do not."""
    table = generate_reports(N, seed=2, n_drugs=500, n_events=1000)
    pairs = detect(table).pairs.to_pandas()
    injected = {(p.drug, p.event) for p in injected_pairs(2, n_drugs=500, n_events=1000)}
    pairs["injected"] = [
        (d, e) in injected for d, e in zip(pairs["drug"], pairs["event"], strict=True)
    ]
    hit = pairs[pairs["injected"] & (pairs["n"] >= 5)]
    rest = pairs[~pairs["injected"]]
    assert len(hit) >= 15
    assert (hit["ic025"] > 0).mean() >= 0.9
    assert (hit["eb05"] >= 2).mean() >= 0.5
    assert hit["eb05"].median() > rest["eb05"].quantile(0.999)
    assert (rest["eb05"] >= 2).mean() < 0.002
    top = pairs.sort_values("eb05", ascending=False).head(20)
    assert top["injected"].sum() >= 12
