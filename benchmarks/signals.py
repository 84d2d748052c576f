"""How `dmtwatch.pv.signals.detect` scales, and how it compares with vigipy.

For each size (synthetic FAERS-like reports, dmtwatch.pv.synth_reports): the generation
time, then `detect` (PRR, ROR, IC and EBGM for every pair, the GPS prior fitted on all of
them) with its time by stage and its peak memory, each size in a child process of its own
so that the peak RSS (VmHWM, native memory included: DuckDB, Arrow, NumPy) is that run's.
By default the reports are generated as `read_faers` gives FAERS (``--shape sets``: each
report's drugs and events apart, counted by the sparse product); ``--shape rows`` gives
the same reports as one long (report, drug, event) table, the shape of a reports CSV,
counted row by row in DuckDB. Reading FAERS files is not part of the time.

Then, side by side in the same run, on the same 1M-report input written once to Parquet:
dmtwatch in this environment and vigipy in its own (benchmarks/vigipy_env.sh creates
build/bench/venv-vigipy; vigipy is no dependency of dmtwatch). Each side reads the file
(timed apart) and computes the four measures on the same pairs with the same unique-report
margins and N (benchmarks/vigipy_side.py says how vigipy is fed); the results are then
compared pair by pair. Record the figures in docs/performance.md.

    .venv/bin/python benchmarks/signals.py [--sizes 1000000 5000000 20000000] [--seed 7]
        [--vigipy-size 1000000 | --no-vigipy] [--vigipy-timeout 1200] [--strata sex]
        [--shape sets | rows] [--blas-threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import selectors
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCH = ROOT / "build" / "bench"
GIB = 2**30

# (module, function) timed inside detect; patched on the module that looks the name up.
# The first four are detect's stages (they add up to its time); the others are parts of
# them: the optimiser runs of the prior fit, the EB05/EB95 root-finding (wall time of
# the plural, or the singular's time summed over the threads that run it).
STAGES = (
    ("dmtwatch.pv.signals", "count_pairs"),
    ("dmtwatch.pv.signals", "disproportionality"),
    ("dmtwatch.pv.signals", "fit_prior"),
    ("dmtwatch.pv.signals", "ebgm_quantities"),
)
PARTS = (
    ("dmtwatch.pv.gps", "_minimise"),
    ("dmtwatch.pv.gps", "_newton"),
    ("dmtwatch.pv.gps", "_mixture_quantiles"),
    ("dmtwatch.pv.gps", "_mixture_quantile"),
)


# ---------------------------------------------------------------------------------------
# child side: one measurement per process


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux: 5 > /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _instrument() -> dict[str, list[float]]:
    """Wrap the stages of detect with timers (no change to the code that runs)."""
    import importlib

    spent: dict[str, list[float]] = {}

    def wrap(name, fn):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds_calls = spent.setdefault(name, [0.0, 0])
                seconds_calls[0] += time.perf_counter() - t
                seconds_calls[1] += 1

        return timed

    for module_name, name in STAGES + PARTS:
        module = importlib.import_module(module_name)
        fn = getattr(module, name, None)
        if callable(fn):
            setattr(module, name, wrap(name, fn))
    return spent


def _detect(reports, strata: list[str] | None) -> dict:
    from dmtwatch.pv.signals import detect

    spent = _instrument()
    rss_before = _status_kib("VmRSS")
    reset = _reset_peak()
    t = time.perf_counter()
    signals = detect(reports, strata=strata or None)
    seconds = time.perf_counter() - t
    prior = signals.prior
    return {
        "signals": signals,
        "detect_s": seconds,
        "stages": dict(spent),
        "pairs": signals.pairs.num_rows,
        "n_reports": signals.n_reports,
        "rss_before_gib": rss_before / 2**20,
        "detect_peak_gib": _status_kib("VmHWM") / 2**20 if reset else None,
        "prior": [prior.alpha1, prior.beta1, prior.alpha2, prior.beta2, prior.p],
        "prior_nll": prior.neg_log_likelihood,
    }


def child_synthetic(size: int, seed: int, shape: str, strata: list[str] | None) -> dict:
    import numpy as np

    from dmtwatch.pv.synth_reports import generate_report_sets, generate_reports

    t = time.perf_counter()
    if shape == "sets":
        reports = generate_report_sets(size, seed)
        per_report = np.bincount(reports.drug_report, minlength=size).astype(np.int64)
        rows = int(per_report @ np.bincount(reports.event_report, minlength=size))
        mentions = reports.drug.size + reports.event.size
        arrays = (reports.drug_report, reports.drug, reports.event_report, reports.event)
        nbytes = reports.reports.nbytes + sum(a.nbytes for a in arrays)
    else:
        reports = generate_reports(size, seed)
        rows, mentions, nbytes = reports.num_rows, None, reports.nbytes
    gen_s = time.perf_counter() - t
    gen_peak = _status_kib("VmHWM") / 2**20
    out = _detect(reports, strata)
    out.pop("signals")
    return out | {
        "size": size,
        "rows": rows,
        "mentions": mentions,
        "table_gib": nbytes / GIB,
        "gen_s": gen_s,
        "gen_peak_gib": gen_peak,
        "process_peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def child_write(size: int, seed: int, path: str) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dmtwatch.pv.synth_reports import generate_reports

    t = time.perf_counter()
    reports = generate_reports(size, seed).select(["report_id", "drug", "event"])
    gen_s = time.perf_counter() - t
    plain = pa.schema([("report_id", pa.int64()), ("drug", pa.string()), ("event", pa.string())])
    pq.write_table(reports.cast(plain), path)
    return {"gen_s": gen_s, "rows": reports.num_rows}


def child_file(path: str, results: str) -> dict:
    import pyarrow.dataset  # noqa: F401  (imported on first read otherwise: ~0.5 s)
    import pyarrow.parquet as pq

    t = time.perf_counter()
    reports = pq.read_table(path, columns=["report_id", "drug", "event"])
    read_s = time.perf_counter() - t
    out = _detect(reports, None)
    signals = out.pop("signals")
    pq.write_table(signals.pairs, results)
    return out | {
        "read_s": read_s,
        "rows": reports.num_rows,
        "process_peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


# ---------------------------------------------------------------------------------------
# parent side


def run_child(*args: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"child {' '.join(args)} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_vigipy(python: str, reports: Path, results: Path, prior, timeout: float) -> dict:
    """vigipy_side.py's JSON lines, read as they come; stops at ``timeout`` seconds."""
    cmd = [python, str(HERE / "vigipy_side.py"), str(reports), str(results)]
    if prior is not None:
        cmd += ["--prior", *(repr(float(x)) for x in prior)]
    steps: dict = {}
    start = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT) as proc:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        timed_out = False
        while True:
            left = timeout - (time.perf_counter() - start)
            if left <= 0:
                proc.kill()
                timed_out = True
                break
            if not sel.select(timeout=min(left, 5.0)):
                continue
            line = proc.stdout.readline()
            if not line:
                break
            item = json.loads(line)
            steps[item.pop("step")] = item
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    steps["timed_out"] = timed_out
    steps["returncode"] = proc.returncode
    steps["child_maxrss_gib"] = usage.ru_maxrss / 2**20
    return steps


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f} s" if x >= 1 else f"{x:,.2f} s"


def _gib(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} GiB"


def header() -> None:
    import duckdb
    import numpy
    import pyarrow
    import scipy

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    blas = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL"))}
    print(
        f"dmtwatch signals benchmark: {os.cpu_count()} cores, {mem:.1f} GiB, "
        f"{platform.python_implementation()} {platform.python_version()}; duckdb "
        f"{duckdb.__version__}, numpy {numpy.__version__}, pyarrow {pyarrow.__version__}, "
        f"scipy {scipy.__version__}; BLAS env {blas or 'default'}"
    )


def load() -> str:
    return "load avg " + "/".join(f"{x:.1f}" for x in os.getloadavg())


def breakdown(r: dict) -> str:
    """detect's time by stage, and the parts of the stages that were timed."""
    spent = r["stages"]
    main = [name for _, name in STAGES if name in spent]
    parts = [f"{name} {_s(spent[name][0])}" for name in main]
    parts.append(f"rest {_s(r['detect_s'] - sum(spent[name][0] for name in main))}")
    extra = []
    if "_minimise" in spent:
        seconds, calls = spent["_minimise"]
        extra.append(f"{int(calls)} optimiser runs {_s(seconds)}")
    if "_newton" in spent:
        extra.append(f"quasi-Newton polish on all points {_s(spent['_newton'][0])}")
    if "_mixture_quantiles" in spent:
        extra.append(f"EB05/EB95 root-finding {_s(spent['_mixture_quantiles'][0])}")
    elif "_mixture_quantile" in spent:
        seconds = spent["_mixture_quantile"][0]
        extra.append(f"EB05/EB95 root-finding {_s(seconds)} summed over threads")
    return "stages: " + " | ".join(parts) + (f" ({'; '.join(extra)})" if extra else "")


def scale(sizes: list[int], seed: int, strata: list[str] | None, shape: str) -> None:
    what = f"stratified by {', '.join(strata)}" if strata else "unstratified"
    held = (
        "as drug and event sets (FAERS's shape, sparse count)"
        if shape == "sets"
        else "as one long table (a reports CSV's shape, row-wise SQL count)"
    )
    print(f"\ndetect on synthetic reports {held} (seed {seed}, {what}); one child process per size")
    print(
        f"{'reports':>12} {'rows':>13} {'pairs':>11} {'generate':>10} {'detect':>9} "
        f"{'peak RSS detect':>16} {'peak RSS all':>13}  {'(input table)':>13}"
    )
    for size in sizes:
        before = load()
        r = run_child("synthetic", str(size), str(seed), shape, *(strata or []))
        print(
            f"{size:>12,} {r['rows']:>13,} {r['pairs']:>11,} {_s(r['gen_s']):>10} "
            f"{_s(r['detect_s']):>9} {_gib(r['detect_peak_gib']):>16} "
            f"{_gib(r['process_peak_gib']):>13}  {_gib(r['table_gib']):>13}"
        )
        print(f"{'':>12}   {breakdown(r)}")
        if r["mentions"] is not None:
            print(
                f"{'':>12}   input: {r['mentions']:,} drug and event mentions (rows: their "
                "cross product per report, repeats included)"
            )
        prior = ", ".join(f"{x:.4g}" for x in r["prior"])
        print(
            f"{'':>12}   prior ({prior}), -logL {r['prior_nll']:,.1f}; generation peak "
            f"{_gib(r['gen_peak_gib'])}; {before} before, {load()} after"
        )
        if size >= 20_000_000:
            verdict = "meets" if r["detect_s"] < 60 else "MISSES"
            print(f"{'':>12}   target: 20M reports in < 60 s: {verdict} ({_s(r['detect_s'])})")


def agreement(dm_path: Path, vp_path: Path, dm: dict, vp: dict) -> None:
    import numpy as np
    import pyarrow.parquet as pq

    from dmtwatch.pv.gps import neg_log_likelihood

    a = pq.read_table(dm_path).to_pandas()
    b = pq.read_table(vp_path).to_pandas()
    m = a.merge(b, on=["drug", "event"], suffixes=("", "_vp"), how="outer", indicator=True)
    both = m[m["_merge"] == "both"]
    print(
        f"  pairs: dmtwatch {len(a):,}, vigipy {len(b):,}, in both {len(both):,}; "
        f"n identical: {bool((both['n'] == both['n_vp']).all())}; expected max rel diff "
        f"{np.nanmax(np.abs(both['expected_vp'] / both['expected'] - 1)):.1e}"
    )

    def rel(col: str, mask) -> str:
        x, y = both.loc[mask, col].to_numpy(float), both.loc[mask, col + "_vp"].to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
        d = np.abs(y[ok] / x[ok] - 1)
        return f"max {d.max():.1e}, median {np.median(d):.1e} over {ok.sum():,}"

    b_cell = both["n_drug"] - both["n"]
    c_cell = both["n_event"] - both["n"]
    d_cell = dm["n_reports"] - both["n_drug"] - c_cell
    full = (b_cell > 0) & (c_cell > 0) & (d_cell > 0)
    print(f"  PRR, pairs with no zero cell: {rel('prr', full)}; lower limit {rel('prr_lo', full)}")
    print(f"  ROR, pairs with no zero cell: {rel('ror', full)}; lower limit {rel('ror_lo', full)}")
    print(
        f"  ROR, pairs with a zero cell (both +0.5 Haldane): {rel('ror', ~full)} (PRR differs "
        "there by design: vigipy adds 0.5, dmtwatch leaves PRR uncorrected)"
    )
    d_ic = (both["ic025_vp"] - both["ic025"]).abs()
    print(
        f"  IC025: median |diff| {d_ic.median():.3f}, 95th pct {d_ic.quantile(0.95):.3f} "
        "(different estimators: vigipy BCPNN = Noren's full-Bayes IC with a normal "
        "approximation; dmtwatch = IC with +0.5 shrinkage, exact gamma quantile); "
        f"IC025 > 0 agree on {((both['ic025'] > 0) == (both['ic025_vp'] > 0)).mean():.2%}"
    )
    n, e = a["n"].to_numpy(float), a["expected"].to_numpy(float)
    p_dm, p_vp = dm["prior"], vp.get("prior", {}).get("prior")
    nll_dm = neg_log_likelihood(p_dm, n, e)
    line = f"  GPS prior, -logL by the same likelihood (n >= 1): dmtwatch {nll_dm:,.2f} ({', '.join(f'{x:.4g}' for x in p_dm)})"
    if p_vp:
        nll_vp = neg_log_likelihood(p_vp, n, e)
        line += f"; vigipy {nll_vp:,.2f} ({', '.join(f'{x:.4g}' for x in p_vp)})"
    print(line)
    print(
        f"  EBGM {rel('ebgm', both['n'] > 0)}; EB05 {rel('eb05', both['n'] > 0)} "
        "(these follow the fitted priors: equal only where the priors are)"
    )
    eb_dm, eb_vp = both["eb05"] >= 2, both["eb05_vp"] >= 2
    print(
        f"  EB05 >= 2: dmtwatch {int(eb_dm.sum()):,}, vigipy {int(eb_vp.sum()):,}, "
        f"both {int((eb_dm & eb_vp).sum()):,}"
    )


def versus_vigipy(size: int, seed: int, timeout: float) -> None:
    BENCH.mkdir(parents=True, exist_ok=True)
    reports = BENCH / f"pv_reports_{size}_{seed}.parquet"
    if not reports.exists():
        w = run_child("write", str(size), str(seed), str(reports))
        print(f"\nwrote {reports.relative_to(ROOT)}: {w['rows']:,} rows")
    print(f"\nvigipy vs dmtwatch, same input: {size:,} reports, {reports.relative_to(ROOT)}")
    setup = subprocess.run(
        ["bash", str(HERE / "vigipy_env.sh")], capture_output=True, text=True, cwd=ROOT
    )
    if setup.returncode != 0:
        sys.stderr.write(setup.stderr)
        raise SystemExit("could not set up vigipy's environment (benchmarks/vigipy_env.sh)")
    python = str(ROOT / setup.stdout.strip().splitlines()[-1])

    dm_out, vp_out = BENCH / "pv_dmtwatch_pairs.parquet", BENCH / "pv_vigipy_pairs.parquet"
    before = load()
    dm = run_child("file", str(reports), str(dm_out))
    vp = run_vigipy(python, reports, vp_out, dm["prior"], timeout)
    after = load()
    extrapolated = vp["timed_out"] or "done" not in vp
    if extrapolated:
        vp = extrapolate(python, size, seed, vp, timeout)

    st = {k: v[0] for k, v in dm["stages"].items()}
    measures_dm = dm["detect_s"] - st.get("count_pairs", 0.0)
    g = vp.get("gps", {}).get("seconds")
    g_fixed = vp.get("gps_fixed_prior", {}).get("seconds")
    rows = [
        ("read the Parquet file", dm["read_s"], vp["read"]["seconds"]),
        ("unique-report counts", st.get("count_pairs"), vp["count"]["seconds"]),
        ("vigipy.convert + margins", None, vp["convert"]["seconds"] + vp["margins"]["seconds"]),
        ("PRR + ROR + IC (all pairs)", st.get("disproportionality"),
         vp["prr"]["seconds"] + vp["ror"]["seconds"] + vp["bcpnn"]["seconds"]),
        ("  vigipy PRR / ROR / BCPNN", None, None),
        ("GPS prior fit", st.get("fit_prior"), None if g_fixed is None else g - g_fixed),
        ("EBGM, EB05, EB95", st.get("ebgm_quantities"), g_fixed),
    ]  # fmt: skip
    print(f"  {'step':<30} {'dmtwatch':>12} {'vigipy':>12}")
    for label, x, y in rows:
        if label.startswith("  vigipy"):
            per = " / ".join(_s(vp[k]["seconds"]) for k in ("prr", "ror", "bcpnn"))
            print(f"  {label:<30} {'':>12} {per:>12}")
            continue
        print(f"  {label:<30} {_s(x):>12} {_s(y):>12}")
    vp_measures = sum(vp[k]["seconds"] for k in ("prr", "ror", "bcpnn", "gps"))
    vp_total = vp_measures + sum(vp[k]["seconds"] for k in ("count", "convert", "margins"))
    print(f"  {'counts + four measures':<30} {_s(dm['detect_s']):>12} {_s(vp_total):>12}")
    print(f"  {'four measures only':<30} {_s(measures_dm):>12} {_s(vp_measures):>12}")
    print(
        f"  {'peak RSS (process)':<30} {_gib(dm['process_peak_gib']):>12} "
        f"{_gib(vp['child_maxrss_gib']):>12}"
    )
    print(f"  dmtwatch detect {breakdown(dm)}")
    label = " (EXTRAPOLATED, see above)" if extrapolated else ""
    print(
        f"  speed-up{label}: {vp_total / dm['detect_s']:.1f}x counts + measures "
        f"(detect vs pandas counting + vigipy), {vp_measures / measures_dm:.1f}x measures only "
        f"(target >= 10x); {before} before, {after} after"
    )
    if g_fixed is not None:
        print(
            "  (vigipy's GPS is timed twice: fitting its prior (one Nelder-Mead start, "
            "as it does by default) and again with dmtwatch's prior given, which times "
            "its posterior part alone; the fit is the difference)"
        )
    if not extrapolated:
        agreement(dm_out, vp_out, dm, vp)


def extrapolate(python: str, size: int, seed: int, full: dict, timeout: float) -> dict:
    """vigipy did not finish in time: time the missing steps on a tenth of the reports and
    scale them by the ratio of pairs (vigipy's steps are linear in pairs or worse)."""
    small = max(size // 10, 1000)
    path = BENCH / f"pv_reports_{small}_{seed}.parquet"
    if not path.exists():
        run_child("write", str(small), str(seed), str(path))
    dm_small = run_child("file", str(path), str(BENCH / "pv_dmtwatch_small.parquet"))
    small_out = BENCH / "pv_vigipy_small.parquet"
    vp = run_vigipy(python, path, small_out, dm_small["prior"], 4 * timeout)
    dm_full_pairs = run_child("file", str(BENCH / f"pv_reports_{size}_{seed}.parquet"),
                              str(BENCH / "pv_dmtwatch_pairs.parquet"))["pairs"]  # fmt: skip
    factor = dm_full_pairs / dm_small["pairs"]
    print(
        f"  vigipy did not finish in {timeout:,.0f} s on {size:,} reports: the steps it had "
        f"not done are timed on {small:,} reports and scaled by the ratio of pairs "
        f"({factor:.1f}x), which is optimistic for vigipy (its GPS fit needs more "
        "iterations on more pairs)"
    )
    out = dict(full)
    for k, v in vp.items():
        if isinstance(v, dict) and "seconds" in v and k not in full:
            out[k] = {"seconds": v["seconds"] * factor}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--strata", nargs="*", default=None, help="e.g. sex")
    parser.add_argument(
        "--shape",
        choices=("sets", "rows"),
        default="sets",
        help="reports as drug and event sets (FAERS) or as one long table (reports CSV)",
    )
    parser.add_argument("--vigipy-size", type=int, default=1_000_000)
    parser.add_argument("--no-vigipy", action="store_true")
    parser.add_argument("--vigipy-timeout", type=float, default=1200.0)
    parser.add_argument(
        "--blas-threads",
        type=int,
        help="set OPENBLAS_NUM_THREADS and OMP_NUM_THREADS for every child, both sides",
    )
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.blas_threads:
        os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(args.blas_threads)

    if args.child:
        kind, *rest = args.child
        if kind == "synthetic":
            out = child_synthetic(int(rest[0]), int(rest[1]), rest[2], rest[3:] or None)
        elif kind == "write":
            out = child_write(int(rest[0]), int(rest[1]), rest[2])
        else:
            out = child_file(rest[0], rest[1])
        print(json.dumps(out))
        return

    header()
    if args.sizes:
        scale(args.sizes, args.seed, args.strata, args.shape)
    if not args.no_vigipy:
        versus_vigipy(args.vigipy_size, args.seed, args.vigipy_timeout)


if __name__ == "__main__":
    main()
