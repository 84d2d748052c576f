"""Signals end to end: caers (openEBGM's data) through counting, the four measures and the
prior fit; --drug and --min-count; the contract's CSV/JSON; nothing partial written."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from dmtwatch.pv.signals import OUTPUT_COLUMNS, SignalsError, detect

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CAERS = DATA / "caers" / "caers.csv"
needs_caers = pytest.mark.skipif(
    not CAERS.exists(),
    reason=f"reference data not found at {CAERS} (../shared is absent in a user's clone)",
)
CONTRACT = (
    "drug",
    "event",
    "n",
    "expected",
    "rr",
    "prr",
    "prr_lo",
    "prr_hi",
    "ror",
    "ror_lo",
    "ror_hi",
    "ic",
    "ic025",
    "ic975",
    "ebgm",
    "eb05",
    "eb95",
)


def _caers() -> pa.Table:
    t = pacsv.read_csv(
        CAERS, convert_options=pacsv.ConvertOptions(column_types={"id": pa.string()})
    )
    return t.rename_columns(["report_id", "drug", "event", "sex"])


@pytest.fixture(scope="module")
def caers_signals():
    return detect(_caers())


@needs_caers
def test_caers_counts_prior_and_scores(caers_signals) -> None:
    s = caers_signals
    assert s.n_reports == 3356
    assert s.pairs.num_rows == 17189
    assert s.prior.neg_log_likelihood == pytest.approx(4162.456, abs=0.01)
    assert (
        set(CONTRACT) <= set(s.pairs.column_names) and tuple(s.pairs.column_names) == OUTPUT_COLUMNS
    )
    eb05 = s.pairs["eb05"].to_numpy()
    # openEBGM's vignette: 131 pairs reach EB05 >= 2 (at its own, equivalent, fit)
    assert abs(int((eb05 >= 2).sum()) - 131) <= 2


@needs_caers
def test_stratified_expected_counts_differ_but_sum(caers_signals) -> None:
    strat = detect(_caers(), strata=["sex"])
    crude = caers_signals.pairs["expected"].to_numpy()
    by_sex = strat.pairs["expected"].to_numpy()
    assert strat.pairs.num_rows == caers_signals.pairs.num_rows
    assert not (abs(crude - by_sex) < 1e-12).all()
    assert strat.pairs["n"].equals(caers_signals.pairs["n"])


@needs_caers
def test_drug_and_min_count_filters() -> None:
    s = detect(_caers(), drugs=["prevagen"], min_count=2)
    assert set(s.pairs["drug"].to_pylist()) == {"PREVAGEN"}
    assert min(s.pairs["n"].to_pylist()) >= 2
    with pytest.raises(SignalsError, match="no drug-event pair"):
        detect(_caers(), drugs=["NO SUCH PRODUCT"])


def _write_reports(path: Path) -> Path:
    table = _caers()
    pacsv.write_csv(table, path)
    return path


@needs_caers
def test_cli_csv_and_json_follow_the_contract(tmp_path: Path) -> None:
    reports = _write_reports(tmp_path / "reports.csv")
    out_csv, out_json = tmp_path / "s.csv", tmp_path / "s.json"
    for fmt, out in (("csv", out_csv), ("json", out_json)):
        subprocess.run(
            [sys.executable, "-m", "dmtwatch", "signals", "--reports", str(reports), "--stratify", "sex",
             "--drug", "PREVAGEN", "--format", fmt, "--out", str(out)],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    rows = list(csv.DictReader(out_csv.open()))
    assert rows and set(CONTRACT) <= set(rows[0]) and {r["drug"] for r in rows} == {"PREVAGEN"}
    doc = json.loads(out_json.read_text())
    assert set(doc["prior"]) == {"alpha1", "beta1", "alpha2", "beta2", "p", "neg_log_likelihood"}
    assert doc["n_reports"] == 3356 and len(doc["pairs"]) == len(rows)


@needs_caers
def test_cli_empty_result_writes_nothing(tmp_path: Path) -> None:
    reports = _write_reports(tmp_path / "reports.csv")
    out = tmp_path / "s.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "dmtwatch", "signals", "--reports", str(reports), "--drug", "NOTADRUG", "--format", "csv", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "no drug-event pair" in proc.stderr and "NOTADRUG" in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_reports_file_with_missing_columns_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("report_id,drug\n1,A\n")
    proc = subprocess.run(
        [sys.executable, "-m", "dmtwatch", "signals", "--reports", str(bad), "--format", "csv"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "bad.csv" in proc.stderr and "event" in proc.stderr
