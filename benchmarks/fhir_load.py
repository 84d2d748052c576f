"""How fast a Bulk Data FHIR export loads: the synthetic clinic written as NDJSON (one
file per resource type, as a Bulk Data export gives), read by `read_fhir` into validated
canonical tables. Also times reading the same clinic as CSV, the yardstick. Each run is
a child process, so peak memory is the reader's own. Prints the figures; record them in
docs/performance.md.

    .venv/bin/python benchmarks/fhir_load.py [--patients 10000] [--seed 5] [--runs 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

AS_OF = dt.date(2016, 1, 15)
ROOT = Path(__file__).resolve().parent.parent / "build" / "bench"


def export(n: int, seed: int) -> tuple[Path, Path]:
    """The clinic as CSV and as Bulk Data NDJSON, made once and kept under build/bench."""
    from dmtwatch.fhir.write import write_ndjson
    from dmtwatch.io import read_clinic
    from dmtwatch.synth import generate, write_csv

    csv = ROOT / f"clinic_{n}_{seed}"
    ndjson = ROOT / f"fhir_{n}_{seed}"
    if not (csv / "labs.csv").exists():
        write_csv(generate(n, seed, AS_OF), csv)
    if not (ndjson / "Observation.ndjson").exists():
        t = time.perf_counter()
        counts = write_ndjson(read_clinic(csv)[0], ndjson)
        print(f"  wrote {sum(counts.values()):,} resources in {time.perf_counter() - t:.1f} s")
    return csv, ndjson


def child(kind: str, path: str) -> None:
    """One timed read, in its own process; prints a JSON line."""
    t = time.perf_counter()
    if kind == "fhir":
        from dmtwatch.fhir.read import read_fhir

        data = read_fhir(path)
        rows, resources = data.dataset.row_counts(), sum(data.resources.values())
    else:
        from dmtwatch.io import read_clinic

        dataset, _ = read_clinic(path)
        rows, resources = dataset.row_counts(), None
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "resources": resources, "rows": rows, "peak_mb": peak}))


def run(kind: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    csv, ndjson = export(args.patients, args.seed)
    size = sum(f.stat().st_size for f in ndjson.glob("*.ndjson")) / 1e9
    print(f"{args.patients:,} patients; NDJSON {size:.2f} GB")
    for run_no in range(args.runs):
        fhir = run("fhir", ndjson)
        base = run("csv", csv)
        rate = fhir["resources"] / fhir["seconds"]
        print(
            f"  run {run_no + 1}: FHIR {fhir['resources']:,} resources in {fhir['seconds']:.1f} s"
            f" = {rate:,.0f} resources/s (peak {fhir['peak_mb']:,.0f} MB);"
            f" same clinic as CSV {base['seconds']:.1f} s (peak {base['peak_mb']:,.0f} MB)"
        )
        assert fhir["rows"] == base["rows"], (fhir["rows"], base["rows"])


if __name__ == "__main__":
    main()
