"""The CDS Hooks service under attack, over real HTTP (issue 11, part 1; docs/security.md).

`dmtwatch serve` runs as its own process, as in tests/test_cds.py. A hostile "FHIR server"
(a thread here) drips bytes, redirects and links elsewhere, answers odd shapes and
internal-looking text; a bare loopback listener counts the connections it accepts, so a
refused address is proven refused before any connection, not after.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import cds_patients as P
from tests.fhir_server import free_port, running

SERVICE = "/cds-services/dmtwatch-monitoring"
TOKEN = "hostile-test-token-51c2"
SECRET = "INTERNAL-SECRET-TEXT"
EHR = "https://ehr.example.org"
TODAY = dt.date.today()
SEEN: list[dict] = []  # the requests the hostile server received: mode, path, authorization


# --- a loopback listener that must see no connection ---------------------------------------


class Listener:
    """Accepts and counts connections on a loopback port (answers nothing)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()


# --- a hostile FHIR server ------------------------------------------------------------------


def _bundle(links=None, entries=None) -> dict:
    body: dict = {"resourceType": "Bundle", "type": "searchset"}
    if links is not None:
        body["link"] = links
    if entries is not None:
        body["entry"] = entries
    return body


class Hostile(BaseHTTPRequestHandler):
    """`/<mode>/<FHIR path>`: the mode chooses the misbehaviour."""

    listener_port = 0
    seen: ClassVar[list[dict]] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body, headers: dict | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        mode, _, rest = self.path.lstrip("/").partition("/")
        self.seen.append(
            {"mode": mode, "path": rest, "authorization": self.headers.get("authorization")}
        )
        is_patient = rest.startswith("Patient/")
        elsewhere = f"http://127.0.0.1:{self.listener_port}/{rest}"
        if mode in ("drip", "drip2"):
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            gap = 2.0 if mode == "drip2" else 0.5
            try:
                for _ in range(120):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(gap)
            except OSError:
                return
        elif mode == "data":
            if is_patient:
                self._send(200, {"resourceType": "Patient", "id": rest.split("/")[1][:64]})
            else:
                self._send(200, _bundle(links=[], entries=[]))
        elif mode == "hop":  # same origin: followed, with the token
            self._send(302, b"", {"Location": f"/data/{rest}"})
        elif mode == "redirect":  # another origin: never followed
            self._send(302, b"", {"Location": elsewhere})
        elif mode == "nextout":  # a next link to another origin: never followed
            if is_patient:
                self._send(200, {"resourceType": "Patient", "id": "x"})
            else:
                self._send(200, _bundle(links=[{"relation": "next", "url": elsewhere}]))
        elif mode == "secret":  # internal text, as an error and as a 200
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "processing", "diagnostics": SECRET}],
            }
            if is_patient:
                self._send(500, outcome)
            else:
                self._send(200, f"<html>{SECRET}</html>".encode())
        elif mode == "shape":  # JSON, but not a Bundle's shape
            if is_patient:
                self._send(200, {"resourceType": "Patient", "id": "x"})
            else:
                self._send(200, _bundle(links="oops", entries="oops"))
        elif mode == "big":
            pad = "x" * (2 * 1024 * 1024)
            self._send(200, {"resourceType": "Patient", "id": "x", "text": {"div": pad}})
        else:
            self._send(404, {"resourceType": "OperationOutcome", "issue": []})


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    it = Listener()
    yield it
    it.close()


@pytest.fixture(scope="module")
def hostile(listener) -> Iterator[str]:
    handler = type("Handler", (Hostile,), {"listener_port": listener.port, "seen": SEEN})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# link-local and metadata, in the spellings an attacker uses; each allow-listed below, so
# that only the address check (after resolution) stands between the service and them
METADATA = [
    "http://169.254.169.254",
    "http://2852039166",  # 169.254.169.254 as one decimal number
    "http://0xa9fea9fe",  # and in hex
    "http://[::ffff:169.254.169.254]",  # IPv4-mapped IPv6
    "http://[fe80::1]",
    "http://metadata.google.internal",
]


def _serve(args: list[str]) -> tuple:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "dmtwatch", "serve", "--port", str(port), *args]
    return running(command, f"{base}/cds-services"), base


@pytest.fixture(scope="module")
def guarded(hostile, listener) -> Iterator[str]:
    """A service with tight limits: 2 s to fetch, 1 MB to read or receive, one cold
    evaluation at a time and one waiting. The listener is allow-listed under a decimal
    spelling of 127.0.0.1: allowed by URL, refused by the resolved address."""
    args = ["--fhir-allow", hostile, "--fhir-allow", f"http://2130706433:{listener.port}"]
    for url in METADATA:
        args += ["--fhir-allow", url]
    args += ["--fetch-timeout", "2", "--max-fetch-mb", "1", "--max-body-mb", "1"]
    args += ["--cold-workers", "1", "--cold-queue", "1", "--allow-origin", EHR]
    context, base = _serve(args)
    with context:
        yield base


@pytest.fixture(scope="module")
def clinic(tmp_path_factory, hostile) -> Iterator[str]:
    """A service with the defaults, serving a store (--db) and allowed the hostile server."""
    from dmtwatch.fhir.read import read_fhir_resources
    from dmtwatch.store import save

    folder = tmp_path_factory.mktemp("clinic")
    url = f"sqlite:///{folder / 'clinic.db'}"
    save(read_fhir_resources(P.relapse_without_mri("sec-relapse", TODAY)).dataset, url)
    context, base = _serve(["--db", url, "--fhir-allow", hostile])
    with context:
        yield base


def _call(pid: str = "sec-p", **fields) -> dict:
    return {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/example", "patientId": pid},
        **fields,
    }


def _auth() -> dict:
    return {
        "access_token": TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "dmtwatch",
    }


def _fetching(base: str, server: str, pid: str = "sec-p", **fields) -> httpx.Response:
    body = _call(pid, fhirServer=server, fhirAuthorization=_auth(), **fields)
    return httpx.post(base + SERVICE, json=body, timeout=60)


# --- CORS and content types -----------------------------------------------------------------


def test_with_a_store_no_origin_may_read_by_default(clinic) -> None:
    """The probe: a text/plain POST (a CORS simple request, no preflight) from any page
    was answered 200 with '*'. Now: 415, and no origin is ever named back by default."""
    evil = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
    answer = httpx.post(clinic + SERVICE, content=json.dumps(_call("sec-relapse")), headers=evil)
    assert answer.status_code == 415 and "application/json" in answer.json()["error"]
    assert "access-control-allow-origin" not in answer.headers
    for origin in ("https://evil.example", "https://sandbox.cds-hooks.org"):
        as_json = httpx.post(
            clinic + SERVICE, json=_call("sec-relapse"), headers={"Origin": origin}, timeout=60
        )
        assert as_json.status_code == 200  # a server-to-server caller is still answered
        assert "access-control-allow-origin" not in as_json.headers
        preflight = httpx.options(
            clinic + SERVICE,
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            timeout=10,
        )
        assert "access-control-allow-origin" not in preflight.headers


def test_only_the_configured_origin_is_named_back(guarded) -> None:
    mine = httpx.get(guarded + "/cds-services", headers={"Origin": EHR}, timeout=10)
    assert mine.headers["access-control-allow-origin"] == EHR
    other = httpx.get(guarded + "/cds-services", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("value", ["*", "not-an-origin"])
def test_a_wildcard_or_malformed_origin_stops_the_service_at_start(value) -> None:
    command = [sys.executable, "-m", "dmtwatch", "serve", "--port", str(free_port())]
    done = subprocess.run(
        [*command, "--allow-origin", value], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 64 and "--allow-origin" in done.stderr  # a usage error


@pytest.mark.parametrize("value", ["http://[bad", "ftp://fhir.example", "fhir.example"])
def test_a_malformed_fhir_allow_stops_the_service_at_start(value) -> None:
    command = [sys.executable, "-m", "dmtwatch", "serve", "--port", str(free_port())]
    done = subprocess.run(
        [*command, "--fhir-allow", value], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 64 and "--fhir-allow" in done.stderr  # a usage error


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_only_json_bodies_are_read(guarded, content_type) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = httpx.post(guarded + SERVICE, content=json.dumps(_call()), headers=headers)
    assert answer.status_code == 415


# --- body and fetch limits ------------------------------------------------------------------


def test_a_body_over_the_limit_is_a_413(guarded, clinic) -> None:
    over = json.dumps(_call(extension={"pad": "x" * (1024 * 1024 + 10)}))
    answer = httpx.post(
        guarded + SERVICE, content=over, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    # chunked (no Content-Length): counted as it arrives
    chunks = iter([over[i : i + 65536].encode() for i in range(0, len(over), 65536)])
    chunked = httpx.post(
        guarded + SERVICE, content=chunks, headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 413
    # the default is 5 MB: 4 MB passes the limit (and is a normal call), 6 MB does not
    four = json.dumps(_call("sec-relapse", extension={"pad": "x" * (4 * 1024 * 1024)}))
    six = json.dumps(_call("sec-relapse", extension={"pad": "x" * (6 * 1024 * 1024)}))
    headers = {"Content-Type": "application/json"}
    assert (
        httpx.post(clinic + SERVICE, content=four, headers=headers, timeout=60).status_code == 200
    )
    assert httpx.post(clinic + SERVICE, content=six, headers=headers, timeout=60).status_code == 413


def test_a_fetch_over_the_byte_limit_is_a_412(guarded, hostile) -> None:
    answer = _fetching(guarded, f"{hostile}/big")
    assert answer.status_code == 412 and "exceed 1 MB" in answer.json()["error"]


def test_a_dripping_server_is_cut_at_the_deadline(guarded, hostile) -> None:
    started = time.monotonic()
    answer = _fetching(guarded, f"{hostile}/drip")
    took = time.monotonic() - started
    assert answer.status_code == 412 and "no answer in time" in answer.json()["error"]
    assert took < 2 + 1.5, f"held {took:.1f} s with a 2 s deadline"


def test_the_default_deadline_is_the_documented_10_s(clinic, hostile) -> None:
    """The probe: a byte every 2 s held a call 48 s though the docs promise 10 s."""
    started = time.monotonic()
    answer = _fetching(clinic, f"{hostile}/drip2")
    took = time.monotonic() - started
    assert answer.status_code == 412 and "no answer in time" in answer.json()["error"]
    assert 9 < took < 12, took


def test_beyond_the_cold_queue_a_call_is_answered_503_at_once(guarded, hostile) -> None:
    """One evaluation runs and one waits (both held by the dripping server); the others
    are told at once to retry, rather than holding the EHR."""

    def call(_: int) -> tuple[int, float, str | None]:
        started = time.monotonic()
        answer = _fetching(guarded, f"{hostile}/drip")
        return answer.status_code, time.monotonic() - started, answer.headers.get("retry-after")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, range(4)))
    busy = [r for r in results if r[0] == 503]
    assert len(busy) == 2, results
    assert all(took < 1.5 and retry for _, took, retry in busy), results
    assert sorted(r[0] for r in results if r[0] != 503) == [412, 412], results


# --- where the service may connect ----------------------------------------------------------


def test_a_server_not_allow_listed_is_never_contacted(guarded, listener) -> None:
    before = listener.accepted
    answer = _fetching(guarded, f"http://127.0.0.1:{listener.port}")
    assert answer.status_code == 412 and "not an allow-listed" in answer.json()["error"]
    time.sleep(0.3)
    assert listener.accepted == before


def test_a_name_resolving_to_loopback_is_refused_without_connecting(guarded, listener) -> None:
    """2130706433 is allow-listed, but it resolves to 127.0.0.1: the resolved address is
    checked (loopback only where the allow-list names a loopback host), before connecting."""
    before = listener.accepted
    answer = _fetching(guarded, f"http://2130706433:{listener.port}")
    assert answer.status_code == 412 and "loopback" in answer.json()["error"]
    time.sleep(0.3)
    assert listener.accepted == before


@pytest.mark.parametrize("url", METADATA)
def test_link_local_and_metadata_are_refused_in_every_spelling(guarded, url) -> None:
    started = time.monotonic()
    answer = _fetching(guarded, url)
    assert answer.status_code == 412, answer.text
    assert "link-local" in answer.text or "metadata" in answer.text, answer.text
    assert time.monotonic() - started < 1.5, "refused before any connection attempt"


def test_a_redirect_to_another_origin_is_not_followed(guarded, hostile, listener) -> None:
    before = listener.accepted
    answer = _fetching(guarded, f"{hostile}/redirect")
    assert answer.status_code == 412 and "another origin" in answer.json()["error"]
    time.sleep(0.3)
    assert listener.accepted == before


def test_a_same_origin_redirect_is_followed_with_the_token(guarded, hostile) -> None:
    answer = _fetching(guarded, f"{hostile}/hop", pid="sec-hop")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"cards": []}
    landed = [r for r in SEEN if r["mode"] == "data" and "sec-hop" in r["path"]]
    assert landed and all(r["authorization"] == f"Bearer {TOKEN}" for r in landed)


def test_a_next_link_to_another_origin_never_gets_the_token(guarded, hostile, listener) -> None:
    before = listener.accepted
    fetched = _fetching(guarded, f"{hostile}/nextout", pid="sec-next")
    assert fetched.status_code == 412 and "another origin" in fetched.json()["error"]
    # a prefetched Bundle whose next link leaves the EHR's FHIR server
    record = P.prefetch(P.monitored("sec-next", TODAY))
    record["observations"]["link"] = [
        {"relation": "next", "url": f"http://127.0.0.1:{listener.port}/Observation?page=2"}
    ]
    prefetched = _fetching(guarded, f"{hostile}/data", pid="sec-next", prefetch=record)
    assert prefetched.status_code == 412 and "another origin" in prefetched.json()["error"]
    time.sleep(0.3)
    assert listener.accepted == before


def test_the_client_stays_on_its_servers_origin() -> None:
    """Redirects and next links: the same origin, or the same host upgraded to https."""
    from dmtwatch.fhir.client import FhirClient, Refused

    with FhirClient("http://fhir.example/r4", TOKEN) as client:
        client._on_origin("http://fhir.example/r4/Observation?page=2")
        client._on_origin("https://fhir.example/r4/Observation?page=2")
        for elsewhere in (
            "https://other.example/r4/Observation",
            "http://fhir.example:8080/r4/Observation",
            "http://fhir.example.other.example/r4",
            "ftp://fhir.example/r4",
        ):
            with pytest.raises(Refused, match="another origin"):
                client._on_origin(elsewhere)
    secure = FhirClient("https://fhir.example/r4", TOKEN)
    with secure, pytest.raises(Refused, match="another origin"):
        secure._on_origin("http://fhir.example/r4/Observation")  # no downgrade


def test_errors_never_echo_the_remote_servers_text(guarded, hostile) -> None:
    answer = _fetching(guarded, f"{hostile}/secret")
    assert answer.status_code == 412 and "HTTP 500" in answer.json()["error"]
    assert SECRET not in answer.text
    partial = {"patient": {"resourceType": "Patient", "id": "sec-p"}}
    searched = _fetching(guarded, f"{hostile}/secret", prefetch=partial)
    assert searched.status_code == 412 and "not JSON" in searched.json()["error"]
    assert SECRET not in searched.text


# --- JSON shapes ------------------------------------------------------------------------------


def test_odd_bundle_shapes_are_4xx_with_the_reason(guarded, hostile) -> None:
    fetched = _fetching(guarded, f"{hostile}/shape")
    assert fetched.status_code == 412 and "not a list" in fetched.json()["error"]
    for field, value in (("link", "oops"), ("entry", "oops"), ("link", ["oops"])):
        record = P.prefetch(P.monitored("sec-shape", TODAY))
        record["observations"][field] = value
        answer = httpx.post(guarded + SERVICE, json=_call("sec-shape", prefetch=record))
        assert answer.status_code == 400, answer.text
        assert "prefetch 'observations'" in answer.json()["error"]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
KINDS = st.sampled_from(
    ["Bundle", "Patient", "Observation", "Condition", "MedicationStatement", "OperationOutcome"]
)
RESOURCE = st.builds(
    lambda kind, extra: {**extra, "resourceType": kind},
    KINDS,
    st.dictionaries(
        st.sampled_from(["id", "link", "entry", "subject", "code", "status", "birthDate"]),
        JSON,
        max_size=4,
    ),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    key=st.sampled_from(["patient", "observations", "conditions", "medicationStatements"]),
    value=JSON | RESOURCE,
    context=st.dictionaries(st.sampled_from(["patientId", "userId"]), JSON, max_size=2),
)
def test_no_json_shape_gives_a_5xx(guarded, key, value, context) -> None:
    body = _call("sec-fuzz", prefetch={key: value})
    answer = httpx.post(guarded + SERVICE, json=body, timeout=60)
    assert answer.status_code < 500, answer.text
    odd = {**body, "context": context}
    assert httpx.post(guarded + SERVICE, json=odd, timeout=60).status_code < 500
