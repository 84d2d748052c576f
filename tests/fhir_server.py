"""A small FHIR R4 server for the tests, run as its own process on loopback.

    python tests/fhir_server.py --data bundle.json|folder/ --port 8123 [--token T] [--page-size 50]

It serves what a folder of NDJSON files or one Bundle holds: `GET /<Type>/<id>`,
`GET /<Type>?patient=..|subject=..|_id=..&_count=..` as searchset Bundles with `next`
links, and `GET /metadata`. Unknown search parameters are refused (400), as a strict
server would, so a client sending the wrong one fails loudly. With `--token`, every
request needs `Authorization: Bearer <token>` (401 otherwise). `GET /__log` (never
guarded) lists the requests served, so a test can tell whether and how it was called.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

SEARCH_PARAMS = {"patient", "subject", "_id", "_count", "_offset"}
FHIR_JSON = "application/fhir+json"


def load(path: Path) -> list[dict]:
    if path.is_dir():
        out = []
        for file in sorted(path.glob("*.ndjson")):
            out += [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        return out
    bundle = json.loads(path.read_text())
    return [e["resource"] for e in bundle.get("entry", []) if "resource" in e]


def _outcome(status: int, text: str) -> JSONResponse:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
    }
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


def _refers(resource: dict, param: str, value: str) -> bool:
    wanted = value if "/" in value else f"Patient/{value}"
    ref = (resource.get(param) or resource.get("subject") or {}).get("reference", "")
    return ref == wanted


def create_app(resources: list[dict], token: str | None = None, page_size: int = 50) -> FastAPI:
    app = FastAPI()
    by_type: dict[str, list[dict]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    log: list[dict] = []

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path == "/__log":
            return await call_next(request)
        log.append(
            {
                "path": request.url.path,
                "query": dict(request.query_params),
                "authorization": request.headers.get("authorization"),
            }
        )
        if token is not None and request.headers.get("authorization") != f"Bearer {token}":
            return _outcome(401, "a valid bearer token is required")
        return await call_next(request)

    @app.get("/__log")
    def requests_served() -> list[dict]:
        return log

    @app.get("/metadata")
    def metadata() -> JSONResponse:
        body = {"resourceType": "CapabilityStatement", "status": "active", "fhirVersion": "4.0.1"}
        return JSONResponse(body, media_type=FHIR_JSON)

    @app.get("/{resource_type}/{resource_id}")
    def read(resource_type: str, resource_id: str) -> JSONResponse:
        for r in by_type.get(resource_type, []):
            if r.get("id") == resource_id:
                return JSONResponse(r, media_type=FHIR_JSON)
        return _outcome(404, f"{resource_type}/{resource_id} is not known")

    @app.get("/{resource_type}")
    def search(resource_type: str, request: Request) -> JSONResponse:
        params = dict(request.query_params)
        unknown = set(params) - SEARCH_PARAMS
        if unknown:
            return _outcome(400, f"unsupported search parameter(s): {', '.join(sorted(unknown))}")
        try:
            count = min(int(params.get("_count", page_size)), page_size)
            offset = int(params.get("_offset", 0))
        except ValueError:
            return _outcome(400, "_count and _offset must be integers")
        hits = by_type.get(resource_type, [])
        for name in ("patient", "subject"):
            if name in params:
                hits = [r for r in hits if _refers(r, name, params[name])]
        if "_id" in params:
            hits = [r for r in hits if r.get("id") in params["_id"].split(",")]
        page = hits[offset : offset + count]
        base = str(request.base_url).rstrip("/") + f"/{resource_type}"
        links = [{"relation": "self", "url": f"{base}?{urlencode(params)}"}]
        if offset + count < len(hits):
            following = {**params, "_count": str(count), "_offset": str(offset + count)}
            links.append({"relation": "next", "url": f"{base}?{urlencode(following)}"})
        body = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(hits),
            "link": links,
            "entry": [
                {
                    "fullUrl": f"{str(request.base_url).rstrip('/')}/{resource_type}/{r.get('id')}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in page
            ],
        }
        return JSONResponse(body, media_type=FHIR_JSON)

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    """Poll until the server answers; fail with its output if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace")
            raise RuntimeError(f"server exited with {process.returncode}:\n{output}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not come up in {timeout:.0f} s")


@contextmanager
def running(args: list[str], probe: str, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """A server process (`args`), up once `probe` answers; stopped (by its pid) on exit.

    Its output goes to a file, not a pipe: an unread pipe fills and stalls the server.
    """
    with tempfile.TemporaryDirectory(prefix="dmtwatch-server-") as folder:
        log = Path(folder) / "output.log"
        with log.open("w") as sink:
            process = subprocess.Popen(
                args, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )
        process.output = log  # the server's output so far, for a test to read
        try:
            wait_until_up(probe, process, log)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def fhir_server(data: Path, token: str | None = None, page_size: int = 50) -> Iterator[str]:
    """This server as a separate process on a free loopback port; yields its base URL."""
    port = free_port()
    args = [sys.executable, __file__, "--data", str(data), "--port", str(port)]
    args += ["--page-size", str(page_size)] + (["--token", token] if token else [])
    base = f"http://127.0.0.1:{port}"
    with running(args, f"{base}/__log"):
        yield base


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token")
    parser.add_argument("--page-size", type=int, default=50)
    a = parser.parse_args()
    app = create_app(load(a.data), a.token, a.page_size)
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
