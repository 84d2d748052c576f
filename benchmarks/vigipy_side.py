"""vigipy's side of benchmarks/signals.py, run in vigipy's own environment
(benchmarks/vigipy_env.sh), never with dmtwatch importable.

    python vigipy_side.py REPORTS.parquet RESULTS.parquet [--no-fixed-prior] [--prior a1 b1 a2 b2 p]

Reads the same reports file as dmtwatch (report_id, drug, event), counts unique-report
pairs with pandas (vigipy has no report-level counting for its contingency methods),
builds vigipy's DataContainer with ``vigipy.convert`` and then sets its margins and N to
the unique-report ones (vigipy's own convert sums pair counts instead: N would be the
number of drug-event rows, not of reports), so both tools work on the same pairs, the
same n, n_drug, n_event and N, hence the same expected counts. Then PRR, ROR, BCPNN and
GPS, each on every pair (min_events=1), as vigipy computes them with its defaults
otherwise. Prints one JSON line per timed step as it goes (so a time-out still leaves
the steps done) and writes every pair's results, untimed, for the agreement check.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np
import pandas as pd


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def timed(step: str, fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    emit(step=step, seconds=time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("reports")
    parser.add_argument("results")
    parser.add_argument("--prior", type=float, nargs=5, help="also run GPS with this prior")
    args = parser.parse_args()

    import pyarrow.dataset  # noqa: F401  (as on dmtwatch's side: not timed in the read)
    import vigipy

    emit(step="versions", vigipy=vigipy.__version__, pandas=pd.__version__, numpy=np.__version__)
    reports = timed("read", pd.read_parquet, args.reports, columns=["report_id", "drug", "event"])

    def count(df: pd.DataFrame):
        df = df.drop_duplicates(["report_id", "drug", "event"])
        pairs = df.groupby(["drug", "event"], sort=False).size().rename("count").reset_index()
        n_drug = df.groupby("drug", sort=False)["report_id"].nunique()
        n_event = df.groupby("event", sort=False)["report_id"].nunique()
        return pairs, n_drug, n_event, int(df["report_id"].nunique())

    pairs, n_drug, n_event, n_total = timed("count", count, reports)
    del reports
    pairs = pairs.rename(columns={"drug": "name", "event": "AE"})
    container = timed("convert", vigipy.convert, pairs)

    def unique_report_margins() -> None:
        data = container.data
        data["product_aes"] = data["product_name"].map(n_drug).to_numpy(dtype=np.int64)
        data["count_across_brands"] = data["ae_name"].map(n_event).to_numpy(dtype=np.int64)
        container.N = n_total

    timed("margins", unique_report_margins)
    emit(step="pairs", pairs=len(container.data), n_reports=n_total)

    prr = timed("prr", vigipy.prr, container, min_events=1)
    ror = timed("ror", vigipy.ror, container, min_events=1)
    bcpnn = timed("bcpnn", vigipy.bcpnn, container, min_events=1)
    gps = timed("gps", vigipy.gps, container, min_events=1)
    prior = [float(x) for x in gps.params["prior_param"]]
    emit(step="prior", prior=prior, message=str(gps.params.get("convergence")))
    if args.prior:
        timed("gps_fixed_prior", vigipy.gps, container, min_events=1, prior_param=args.prior)

    key = ["Product", "Adverse Event"]
    out = prr.all_signals[[*key, "Count", "Expected Count", "PRR", "CI Lower", "CI Upper"]]
    out = out.rename(columns={"CI Lower": "prr_lo", "CI Upper": "prr_hi"})
    r = ror.all_signals[[*key, "ROR", "CI Lower", "CI Upper"]]
    out = out.merge(r.rename(columns={"CI Lower": "ror_lo", "CI Upper": "ror_hi"}), on=key)
    out = out.merge(bcpnn.all_signals[[*key, "quantile"]], on=key)
    g = gps.all_signals[[*key, "EBGM", "LowerBound", "UpperBound"]]
    out = out.merge(g, on=key)
    out.columns = [
        "drug", "event", "n", "expected", "prr", "prr_lo", "prr_hi", "ror", "ror_lo",
        "ror_hi", "ic025", "ebgm", "eb05", "eb95",
    ]  # fmt: skip
    out.to_parquet(args.results, index=False)
    emit(step="done", maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


if __name__ == "__main__":
    sys.exit(main())
