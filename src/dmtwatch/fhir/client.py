"""A small FHIR REST client: reads and searches with paging, a bearer token, time limits.

Enough for the CDS Hooks service (one patient's resources, when the EHR did not prefetch
them) and `--fhir-url` (a whole server by search). Errors say which URL failed and why,
never the token.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

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


class FhirClientError(Exception):
    """A FHIR server could not be read; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class FhirClient:
    """One FHIR server base URL, one connection pool; use as a context manager."""

    def __init__(
        self,
        base: str,
        token: str | None = None,
        timeout: httpx.Timeout | float = TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ):
        scheme = urlsplit(base).scheme
        if scheme not in ("http", "https"):
            raise FhirClientError(f"not an http(s) FHIR base URL: {base!r}")
        self.base = base.rstrip("/") + "/"
        headers = {"Accept": FHIR_JSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            headers=headers, timeout=timeout, transport=transport, follow_redirects=True
        )

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get(self, url: str, params: dict | None = None) -> dict:
        """GET a URL relative to the base (or absolute, as next links are) as JSON."""
        target = urljoin(self.base, url)
        if params:  # httpx would replace a query already in the URL, not add to it
            target = str(httpx.URL(target).copy_merge_params(params))
        try:
            response = self._http.get(target)
        except httpx.TimeoutException:
            raise FhirClientError(f"{_shown(target)}: no answer in time") from None
        except httpx.HTTPError as e:
            raise FhirClientError(f"{_shown(target)}: {type(e).__name__}: {e}") from None
        if response.status_code != 200:
            raise FhirClientError(
                f"{_shown(target)}: HTTP {response.status_code}{_outcome(response)}",
                response.status_code,
            )
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise FhirClientError(f"{_shown(target)}: the answer is not JSON") from None
        if not isinstance(body, dict) or "resourceType" not in body:
            raise FhirClientError(f"{_shown(target)}: the answer is not a FHIR resource")
        return body

    def read(self, resource_type: str, resource_id: str) -> dict:
        return self.get(f"{resource_type}/{resource_id}")

    def search(self, resource_type: str, params: dict[str, str] | None = None) -> list[dict]:
        """Every match of a search, following the Bundle's `next` links page by page."""
        query = {"_count": str(PAGE_SIZE), **(params or {})}
        return list(self.pages(resource_type, query))

    def pages(self, url: str, params: dict | None = None) -> Iterator[dict]:
        """The `match` resources of a search Bundle and of every page after it."""
        bundle = self.get(url, params)
        for _ in range(MAX_PAGES):
            if bundle.get("resourceType") != "Bundle":
                raise FhirClientError(f"{_shown(url)}: a search answered with a non-Bundle")
            for entry in bundle.get("entry") or []:
                resource = entry.get("resource")
                mode = (entry.get("search") or {}).get("mode", "match")
                if resource is not None and mode == "match":
                    yield resource
            following = next_link(bundle)
            if following is None:
                return
            bundle = self.get(following)
        raise FhirClientError(f"{_shown(url)}: more than {MAX_PAGES} pages")


def next_link(bundle: dict) -> str | None:
    for link in bundle.get("link") or []:
        if link.get("relation") == "next" and link.get("url"):
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


def _outcome(response: httpx.Response) -> str:
    """The first OperationOutcome diagnostic, when the server sent one."""
    try:
        body = orjson.loads(response.content)
        issue = (body.get("issue") or [{}])[0]
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
    except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError):
        return ""
    return f" ({text})" if text else ""
