"""How long the outcomes audit takes on a synthetic clinic (default 10k patients): the
JSON result (target under 10 s), then report rendering separately.

    .venv/bin/python benchmarks/audit_scale.py [--patients 10000] [--seed 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

from dmtwatch.io import read_clinic
from dmtwatch.outcomes.run import run_audit
from dmtwatch.synth import generate, write_csv

AS_OF = dt.date(2016, 1, 15)
ROOT = Path(__file__).resolve().parent.parent / "build" / "bench"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    folder = ROOT / f"clinic_{args.patients}_{args.seed}"
    if not (folder / "labs.csv").exists():
        write_csv(generate(args.patients, args.seed, AS_OF), folder)
    t0 = time.perf_counter()
    dataset, _ = read_clinic(folder)
    t1 = time.perf_counter()
    result = run_audit(dataset, AS_OF)
    t2 = time.perf_counter()
    text = json.dumps(result)
    t3 = time.perf_counter()
    print(f"{args.patients:,} patients, {dataset['labs'].num_rows:,} lab rows, as of {AS_OF}")
    print(
        f"read + validate {t1 - t0:.2f} s | audit {t2 - t1:.2f} s | json {t3 - t2:.2f} s ({len(text) / 1e6:.1f} MB)"
    )
    print(f"audit json total (read to json): {t3 - t0:.2f} s")
    try:
        from dmtwatch.outcomes.report import render_html, render_pdf
    except ImportError:
        return
    t4 = time.perf_counter()
    html = render_html(result)
    t5 = time.perf_counter()
    print(f"render html {t5 - t4:.2f} s ({len(html) / 1e6:.1f} MB)")
    out = ROOT / f"audit_{args.patients}.pdf"
    render_pdf(result, out)
    print(f"render pdf {time.perf_counter() - t5:.2f} s ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
