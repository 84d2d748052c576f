"""A small FHIR REST client: reads and searches with paging, a bearer token, time limits.

Enough for the CDS Hooks service (one patient's resources, when the EHR did not prefetch
them) and `--fhir-url` (a whole server by search). Errors say which URL failed and why,
never the token.

Every client stays on its base URL's origin: redirects are followed by hand (at most
MAX_REDIRECTS) and only on that origin (or the same host upgraded from http to https),
and a `next` link elsewhere is an error, so the bearer token never goes anywhere else. With an `OutboundPolicy` (the CDS service)
the client also checks, at connect time, every address a host name resolves to (never
link-local, metadata, unspecified or multicast; loopback only when the allow-list names a
loopback host literally), keeps one deadline for everything it fetches, counts the bytes
it reads against a limit, and never quotes the server's own text in an error.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx
import orjson

from dmtwatch.errors import DmtwatchError, NetworkError

# The resource types the profile reads (spec/fhir-profile.md, Input), and the search
# parameter that names the patient on each (R4: AdverseEvent has `subject`, not `patient`).
PATIENT_SEARCHES = {
    "Condition": "patient",
    "MedicationAdministration": "patient",
    "MedicationStatement": "patient",
    "Procedure": "patient",
    "Observation": "patient",
    "AdverseEvent": "subject",
}
PAGE_SIZE = 1000
MAX_PAGES = 10_000  # a server whose next links loop must not hold us forever
TIMEOUT = httpx.Timeout(10.0, connect=3.0)
FHIR_JSON = "application/fhir+json"
MAX_REDIRECTS = 5
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
# cloud instance metadata by name; their addresses are refused below whatever the name
METADATA_NAMES = {"metadata.google.internal", "metadata", "instance-data", "metadata.azure.com"}
METADATA_ADDRESSES = {
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
}


class FhirClientError(NetworkError):
    """A FHIR server could not be read; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ShapeError(DmtwatchError, ValueError):
    """A Bundle that is JSON but not the shape FHIR gives it (e.g. `link` as a string)."""


class Refused(FhirClientError):
    """An outbound fetch the policy does not allow (no connection was attempted)."""


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, the port made explicit."""
    parsed = httpx.URL(url)
    scheme = parsed.scheme.lower()
    port = parsed.port or (443 if scheme == "https" else 80)
    return scheme, parsed.host.lower().rstrip("."), port


def _shown_origin(url: str) -> str:
    scheme, host, port = origin(url)
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


def _is_loopback_literal(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refused_address(address: str, loopback_ok: bool) -> str | None:
    """Why the service must not connect to `address` (an IP), or None."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is None and ip in ipaddress.ip_network("::/96") and int(ip) > 1:
            mapped = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)  # IPv4-compatible ::a.b.c.d
        if mapped is None and ip in ipaddress.ip_network("64:ff9b::/96"):
            mapped = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)  # NAT64
        if mapped is not None:
            return refused_address(str(mapped), loopback_ok)
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_loopback and not loopback_ok:
        return "a loopback address (allow-list a loopback URL to permit it)"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("0.0.0.0/8"):
        return "an address in 0.0.0.0/8"
    return None


@dataclass(frozen=True)
class OutboundPolicy:
    """Where the CDS service may fetch FHIR data: allow-listed base URLs (`--fhir-allow`),
    one deadline per call, a byte limit per call."""

    allowed: tuple[str, ...] = ()
    deadline: float = 10.0  # seconds, for everything one call fetches
    max_bytes: int = 20 * 1024 * 1024

    def entry_for(self, url: str) -> str | None:
        """The allow-list entry `url` falls under (same origin, path under the entry's)."""
        try:
            wanted = origin(url)
            path = httpx.URL(url).path
        except (httpx.InvalidURL, TypeError, ValueError):
            return None
        for entry in self.allowed:
            if origin(entry) != wanted:
                continue
            prefix = httpx.URL(entry).path.rstrip("/")
            if path == prefix or path.startswith(prefix + "/"):
                return entry
        return None

    def check(self, url: str) -> bool:
        """Whether the allow-list lets loopback be reached for `url`; Refused otherwise."""
        try:
            scheme, host, _ = origin(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise Refused("the fhirServer URL cannot be parsed") from None
        if scheme not in ("http", "https"):
            raise Refused("the fhirServer URL is not http(s)")
        if host in METADATA_NAMES:
            raise Refused(f"{_shown_origin(url)} is a cloud metadata service")
        entry = self.entry_for(url)
        if entry is None:
            raise Refused(
                f"{_shown_origin(url)} is not an allow-listed FHIR server (dmtwatch serve "
                "--fhir-allow URL)"
            )
        return _is_loopback_literal(origin(entry)[1])


class _Deadline:
    def __init__(self, seconds: float | None):
        self.end = None if seconds is None else time.monotonic() + seconds

    def left(self, timeout: float | None) -> float | None:
        if self.end is None:
            return timeout
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise httpcore.ReadTimeout("the call's deadline has passed")
        return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every read and write ends by the call's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline):
        self._inner, self._deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        inner = self._inner.start_tls(ssl_context, server_hostname, self._deadline.left(timeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Connects only to addresses the policy allows, checked after name resolution (a name
    cannot smuggle in an address), and to the very address checked (no second lookup)."""

    def __init__(self, deadline: _Deadline, loopback_ok: bool):
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline
        self._loopback_ok = loopback_ok

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        name = host.lower().rstrip(".")
        if name in METADATA_NAMES:
            raise httpcore.ConnectError(f"refused: {name} is a cloud metadata service")
        try:
            found = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise httpcore.ConnectError("the FHIR server's name does not resolve") from None
        addresses = list(dict.fromkeys(info[4][0] for info in found))
        for address in addresses:  # every address, before connecting to any
            reason = refused_address(address, self._loopback_ok)
            if reason is not None:
                raise httpcore.ConnectError(f"refused: the FHIR server resolves to {reason}")
        last: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    address, port, self._deadline.left(timeout), local_address, socket_options
                )
            except httpcore.ConnectError as e:
                last = e
                continue
            return _DeadlineStream(stream, self._deadline)
        raise last or httpcore.ConnectError("no address to connect to")

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("unix sockets are not FHIR servers")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class FhirClient:
    """One FHIR server base URL, one connection pool; use as a context manager."""

    def __init__(
        self,
        base: str,
        token: str | None = None,
        timeout: httpx.Timeout | float = TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        *,
        policy: OutboundPolicy | None = None,
    ):
        scheme = urlsplit(base).scheme
        if scheme not in ("http", "https"):
            raise FhirClientError(f"not an http(s) FHIR base URL: {base!r}")
        self.base = base.rstrip("/") + "/"
        self.policy = policy
        # the service quotes nothing a server wrote: it could be any internal page's text
        self.quote_server = policy is None
        self._read = 0
        headers = {"Accept": FHIR_JSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if policy is not None:
            loopback_ok = policy.check(self.base)
            self._deadline = _Deadline(policy.deadline)
            transport = httpx.HTTPTransport(retries=0)
            transport._pool = httpcore.ConnectionPool(  # our backend: checked addresses
                ssl_context=httpx.create_ssl_context(),
                network_backend=_GuardedBackend(self._deadline, loopback_ok),
            )
        else:
            self._deadline = _Deadline(None)
        self._http = httpx.Client(
            headers=headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            # the service takes no proxy from the environment (it would connect for us,
            # past the address checks); the operator's own import keeps theirs
            trust_env=policy is None,
        )

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _on_origin(self, url: str) -> None:
        """A URL the client is about to fetch: on the base's origin (and allow-listed)."""
        try:
            there, here = origin(url), origin(self.base)
            # the same origin, or the same host upgraded from http to https
            same = there == here or (
                there[1] == here[1] and here[0] == "http" and there[0] == "https"
            )
        except (httpx.InvalidURL, TypeError, ValueError):
            same = False
        if not same:
            raise Refused(
                f"{self._where(self.base)}: refused a link or redirect to another origin "
                "(the bearer token stays with the FHIR server)"
            )
        if self.policy is not None:
            self.policy.check(url)

    def _where(self, url: str) -> str:
        return _shown(url) if self.quote_server else _shown_origin(url)

    def _fetch(self, target: str) -> tuple[int, bytes]:
        """Status and body of a GET, redirects followed by hand on the base's origin."""
        for _ in range(MAX_REDIRECTS + 1):
            self._on_origin(target)
            with self._http.stream("GET", target) as response:
                if response.is_redirect and "location" in response.headers:
                    target = urljoin(target, response.headers["location"])
                    continue
                chunks = []
                for chunk in response.iter_bytes():
                    self._read += len(chunk)
                    if self.policy is not None and self._read > self.policy.max_bytes:
                        limit = self.policy.max_bytes // (1024 * 1024)
                        raise FhirClientError(
                            f"{self._where(target)}: the answers exceed {limit} MB for one call"
                        )
                    self._deadline.left(None)  # a server dripping bytes stops at the deadline
                    chunks.append(chunk)
                return response.status_code, b"".join(chunks)
        raise FhirClientError(f"{self._where(target)}: more than {MAX_REDIRECTS} redirects")

    def get(self, url: str, params: dict | None = None) -> dict:
        """GET a URL relative to the base (or absolute, as next links are) as JSON."""
        target = urljoin(self.base, url)
        if params:  # httpx would replace a query already in the URL, not add to it
            target = str(httpx.URL(target).copy_merge_params(params))
        try:
            status, content = self._fetch(target)
        except (httpx.TimeoutException, httpcore.TimeoutException):
            raise FhirClientError(f"{self._where(target)}: no answer in time") from None
        except httpx.HTTPError as e:
            if self.quote_server:
                raise FhirClientError(f"{_shown(target)}: {type(e).__name__}: {e}") from None
            why = str(e) if str(e).startswith("refused:") else type(e).__name__
            raise FhirClientError(f"{self._where(target)}: {why}") from None
        if status != 200:
            quoted = _outcome(content) if self.quote_server else ""
            raise FhirClientError(f"{self._where(target)}: HTTP {status}{quoted}", status)
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise FhirClientError(f"{self._where(target)}: the answer is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise FhirClientError(f"{self._where(target)}: the answer is not a FHIR resource")
        return body

    def read(self, resource_type: str, resource_id: str) -> dict:
        return self.get(f"{resource_type}/{resource_id}")

    def search(self, resource_type: str, params: dict[str, str] | None = None) -> list[dict]:
        """Every match of a search, following the Bundle's `next` links page by page."""
        query = {"_count": str(PAGE_SIZE), **(params or {})}
        return list(self.pages(resource_type, query))

    def pages(self, url: str, params: dict | None = None) -> Iterator[dict]:
        """The `match` resources of a search Bundle and of every page after it."""
        where = self._where(urljoin(self.base, url))
        bundle = self.get(url, params)
        for _ in range(MAX_PAGES):
            if bundle.get("resourceType") != "Bundle":
                raise FhirClientError(f"{where}: a search answered with a non-Bundle")
            try:
                yield from match_resources(bundle)
                following = next_link(bundle)
            except ShapeError as e:
                raise FhirClientError(f"{where}: {e}") from None
            if following is None:
                return
            bundle = self.get(following)
        raise FhirClientError(f"{where}: more than {MAX_PAGES} pages")


def match_resources(bundle: dict) -> list[dict]:
    """The `match` resources of a search Bundle; ShapeError when it is not shaped as one."""
    entries = bundle.get("entry")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ShapeError("Bundle.entry is not a list")
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ShapeError("a Bundle entry is not an object")
        resource, search = entry.get("resource"), entry.get("search")
        if search is not None and not isinstance(search, dict):
            raise ShapeError("a Bundle entry's search is not an object")
        if resource is not None and not isinstance(resource, dict):
            raise ShapeError("a Bundle entry's resource is not an object")
        if resource is not None and (search or {}).get("mode", "match") == "match":
            out.append(resource)
    return out


def next_link(bundle: dict) -> str | None:
    """The Bundle's `next` link; ShapeError when `link` is not a list of link objects."""
    links = bundle.get("link")
    if links is None:
        return None
    if not isinstance(links, list):
        raise ShapeError("Bundle.link is not a list")
    for link in links:
        if not isinstance(link, dict):
            raise ShapeError("a Bundle link is not an object")
        if link.get("relation") == "next" and link.get("url"):
            if not isinstance(link["url"], str):
                raise ShapeError("a Bundle next link's url is not a string")
            return link["url"]
    return None


def fetch_patient_resources(base: str, patient_id: str, token: str | None = None) -> list[dict]:
    """The patient and every resource of theirs the profile reads."""
    with FhirClient(base, token) as client:
        out = [client.read("Patient", patient_id)]
        for resource_type in PATIENT_SEARCHES:
            out += client.search(resource_type, patient_query(resource_type, patient_id))
    return out


def patient_query(resource_type: str, patient_id: str) -> dict[str, str]:
    """The search parameters selecting one patient's resources of a type."""
    param = PATIENT_SEARCHES[resource_type]
    return {param: patient_id if param == "patient" else f"Patient/{patient_id}"}


def fetch_all_resources(base: str, token: str | None = None) -> list[dict]:
    """Every Patient and every resource of the types the profile reads, server-wide."""
    with FhirClient(base, token) as client:
        out = client.search("Patient")
        for resource_type in PATIENT_SEARCHES:
            out += client.search(resource_type)
    return out


def _shown(url: str) -> str:
    """The URL without its query: search values name a patient."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _outcome(content: bytes) -> str:
    """The first OperationOutcome diagnostic, when the server sent one (for the operator's
    own import from a server they named, never in the service's answers)."""
    try:
        body = orjson.loads(content)
        issue = (body.get("issue") or [{}])[0]
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
    except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError, KeyError):
        return ""
    if not isinstance(text, str) or not text:
        return ""
    text = "".join(c if c.isprintable() else " " for c in text)[:200]
    return f" ({text})"
