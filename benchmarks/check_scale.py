"""How `check` scales: synthetic clinics of 10k and 100k patients, timed against a bare
DuckDB read + aggregate of the same labs.csv (per patient and test: latest date, minimum
value). Prints the figures; record them in docs/performance.md.

    .venv/bin/python benchmarks/check_scale.py [--sizes 10000 100000] [--seed 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

import duckdb

from dmtwatch.engine.run import _plan_for, compile_plan, run_check
from dmtwatch.io import read_clinic
from dmtwatch.protocols.schema import load_protocols, protocol_names
from dmtwatch.synth import generate, write_csv

AS_OF = dt.date(2016, 1, 15)
ROOT = Path(__file__).resolve().parent.parent / "build" / "bench"


def clinic(n: int, seed: int) -> Path:
    folder = ROOT / f"clinic_{n}_{seed}"
    if not (folder / "labs.csv").exists():
        t = time.perf_counter()
        write_csv(generate(n, seed, AS_OF), folder)
        print(f"  generated {n:,} patients in {time.perf_counter() - t:.1f} s")
    return folder


def bare_scan(labs: Path) -> float:
    con = duckdb.connect()
    t = time.perf_counter()
    con.sql(
        f"SELECT patient_id, test, max(date) AS latest, min(try_cast(value AS DOUBLE)) AS lowest "
        f"FROM read_csv('{labs}', all_varchar = true) GROUP BY ALL"
    ).fetchall()
    return time.perf_counter() - t


def check_once(folder: Path) -> dict:
    """What `dmtwatch check --data` does, minus process start-up: read, validate, run."""
    t0 = time.perf_counter()
    dataset, _ = read_clinic(folder)
    t1 = time.perf_counter()
    result = run_check(dataset, AS_OF)
    t2 = time.perf_counter()
    return {"read": t1 - t0, "engine": t2 - t1, "findings": result.findings.num_rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; as of {AS_OF}; best of {args.runs} runs")
    t = time.perf_counter()
    compile_plan(load_protocols())
    print(
        f"protocol compile (Ibis to SQL; cached on disk after the first run): {time.perf_counter() - t:.2f} s"
    )
    _plan_for(tuple(protocol_names()))
    rows = []
    for n in args.sizes:
        folder = clinic(n, args.seed)
        labs = folder / "labs.csv"
        lab_rows = duckdb.sql(
            f"SELECT count(*) FROM read_csv('{labs}', all_varchar = true)"
        ).fetchall()[0][0]
        bare = min(bare_scan(labs) for _ in range(args.runs))
        runs = [check_once(folder) for _ in range(args.runs)]
        timings = min(runs, key=lambda r: r["read"] + r["engine"])
        total = timings["read"] + timings["engine"]
        rows.append((n, lab_rows, bare, total, timings))
        print(
            f"{n:>8,} patients {lab_rows:>11,} lab rows | bare scan {bare:6.2f} s | "
            f"check {total:6.2f} s (read+validate {timings['read']:.2f}, engine {timings['engine']:.2f}) | "
            f"ratio {total / bare:4.2f}x | {timings['findings']:,} findings"
        )
    if len(rows) > 1:
        (n0, r0, b0, c0, _), (n1, r1, b1, c1, _) = rows[0], rows[-1]
        print(
            f"scaling {n0:,} -> {n1:,} patients (x{n1 / n0:.0f}): check x{c1 / c0:.1f}, "
            f"bare scan x{b1 / b0:.1f}, lab rows x{r1 / r0:.1f}"
        )


if __name__ == "__main__":
    main()
