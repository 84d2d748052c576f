"""CDS Hooks latency: one patient, 4 years of monthly labs (every monitored test), two
alemtuzumab courses and a relapse without MRI, sent as prefetch to a real `dmtwatch serve`
process over loopback. Prints p50/p95/max; record them in docs/cds-hooks.md.

    .venv/bin/python benchmarks/cds_latency.py [--requests 200] [--cold 30]

Three workloads: the same record again and again (an EHR calls patient-view on every
chart view; answered from the results cache after the first), a record that changes on
every call (a new result each time: reader and engine run every time), and the same
record on a later day each call (the reader's result is kept; the engine runs). Then the cold
path in-process, split into reader, engine and its stages.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import cds_patients as P  # noqa: E402
from tests.fhir_server import free_port, running  # noqa: E402

SERVICE = "/cds-services/dmtwatch-monitoring"
TODAY = dt.date.today()
PID = "bench-1"


def record(pid: str = PID) -> list[dict]:
    first = TODAY - dt.timedelta(days=4 * 365)
    second = first + dt.timedelta(days=365)
    return [
        P.patient(pid),
        P.ms(pid, first - dt.timedelta(days=5 * 365)),
        P.alemtuzumab_course(pid, first),
        P.alemtuzumab_course(pid, second, days=3),
        P.relapse(pid, TODAY - dt.timedelta(days=12)),
        *P.monthly_labs(pid, first - dt.timedelta(days=10), TODAY - dt.timedelta(days=3)),
    ]


def call(resources: list[dict] | None, pid: str = PID) -> dict:
    body = {
        "hook": "patient-view",
        "hookInstance": "0b6a9c4e-1f0e-4c55-9d2a-3b1f5e7a8c90",
        "context": {"userId": "Practitioner/bench", "patientId": pid},
    }
    if resources is not None:
        body["prefetch"] = P.prefetch(resources)
    return body


def stats(label: str, times: list[float]) -> None:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[max(0, round(0.95 * len(ms)) - 1)]
    print(
        f"{label:<34} n={len(ms):<4} p50 {statistics.median(ms):7.1f} ms   "
        f"p95 {p95:7.1f} ms   max {ms[-1]:7.1f} ms"
    )


def timed_posts(client: httpx.Client, bodies) -> list[float]:
    """Bodies are encoded before the clock starts: the EHR's JSON encoding is not ours."""
    encoded = [orjson.dumps(b) for b in bodies]
    headers = {"Content-Type": "application/json"}
    out = []
    for body in encoded:
        t = time.perf_counter()
        answer = client.post(SERVICE, content=body, headers=headers)
        out.append(time.perf_counter() - t)
        assert answer.status_code == 200, answer.text
        codes = [c["summary"].split(":")[0] for c in answer.json()["cards"]]
        assert "CNS-MRI" in codes, codes
    return out


def over_http(n: int, cold: int) -> None:
    resources = record()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "dmtwatch", "serve", "--port", str(port)]
    size = len(httpx.Request("POST", base, json=call(resources)).content)
    print(f"record: {len(resources)} resources, request body {size / 1e6:.2f} MB")
    with running(args, f"{base}/cds-services"), httpx.Client(base_url=base, timeout=60) as c:
        timed_posts(c, [call(resources)] * 10)  # warm-up (the first call fills the cache)
        stats("same record (cache hit)", timed_posts(c, [call(resources)] * n))
        bodies = []
        for i in range(cold):
            extra = P.lab(PID, "tsh", TODAY - dt.timedelta(days=1), 1.5 + i / 1000)
            bodies.append(call([*resources, extra]))
        stats("new result each call (cold)", timed_posts(c, bodies))
        later = []  # the same record viewed on later days (dmtwatch.asOf): read once
        for i in range(cold):
            body = call(resources)
            body["extension"] = {"dmtwatch.asOf": (TODAY + dt.timedelta(days=1 + i)).isoformat()}
            later.append(body)
        stats("same record, a later day each call", timed_posts(c, later))


def from_store(n: int, patients: int) -> None:
    """`serve --db`: no prefetch; each call a different stored patient, every one with 4
    years of monthly labs, answered from the day's worklist of the whole store."""
    from dmtwatch.fhir.read import read_fhir_resources
    from dmtwatch.store import save

    folder = ROOT / "build" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / f"cds_store_{patients}_{TODAY.isoformat()}.db"
    ids = [f"bench-{i}" for i in range(patients)]
    if not db.exists():
        t = time.perf_counter()
        resources = [r for pid in ids for r in record(pid)]
        save(read_fhir_resources(resources).dataset, f"sqlite:///{db}")
        print(f"store: {patients} patients, {len(resources):,} resources, "
              f"made in {time.perf_counter() - t:.1f} s")  # fmt: skip
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [
        sys.executable,
        "-m",
        "dmtwatch",
        "serve",
        "--port",
        str(port),
        "--db",
        f"sqlite:///{db}",
    ]
    t = time.perf_counter()
    with running(args, f"{base}/cds-services"), httpx.Client(base_url=base, timeout=60) as c:
        print(f"service up with the day's worklist in {time.perf_counter() - t:.1f} s")
        bodies = [call(None, ids[i % patients]) for i in range(n)]
        stats("store, a different patient each call", timed_posts(c, bodies))


def in_process(repeats: int) -> None:
    """Where a cold call's time goes: the reader, then the engine's stages."""
    from dmtwatch.engine.run import (
        _plan_for,
        connect,
        is_small,
        needed_for,
        reduce_findings,
        run_check,
        run_rules,
        run_steps,
    )
    from dmtwatch.fhir.read import read_fhir_resources
    from dmtwatch.protocols.schema import protocol_names

    resources = record()
    full = _plan_for(tuple(protocol_names()))
    parts: dict[str, list[float]] = {}

    def clock(label: str, started: float) -> float:
        now = time.perf_counter()
        parts.setdefault(label, []).append(now - started)
        return now

    run_check(read_fhir_resources(resources).dataset, TODAY)  # warm: imports, caches
    for _ in range(repeats):
        t = time.perf_counter()
        dataset = read_fhir_resources(resources).dataset
        t = clock("reader (read_fhir_resources)", t)
        run_check(dataset, TODAY)
        t = clock("engine (run_check)", t)
        plan = needed_for(full, dataset)
        con = connect(dataset, TODAY, optimize=not is_small(dataset))
        t = clock("  cursor + register tables", t)
        run_steps(con, plan.steps)
        t = clock(f"  {len(plan.steps)} of the plan's {len(full.steps)} steps", t)
        run_rules(con, plan)
        t = clock("  findings + evidence queries", t)
        reduce_findings(con, TODAY)
        clock("  reduce", t)
        con.close()
    for label, times in parts.items():
        stats(label, times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--cold", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=10, help="in-process cold runs")
    parser.add_argument("--store-patients", type=int, default=1000, help="patients in the store")
    a = parser.parse_args()
    print(f"dmtwatch CDS Hooks latency, {dt.datetime.now():%Y-%m-%d %H:%M}")
    over_http(a.requests, a.cold)
    from_store(a.requests, a.store_patients)
    in_process(a.repeats)


if __name__ == "__main__":
    main()
