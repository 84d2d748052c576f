"""One patient's FHIR resources for a hook call: prefetch first, then the EHR's FHIR server.

The specification leaves it to the service to check what was prefetched: a missing key
was not satisfied (or failed), `null` means there is nothing to fetch, and an
OperationOutcome is a failed prefetch. Whatever is missing is read from `fhirServer`;
with no server, the caller decides (the database, or 412).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dmtwatch.cds.models import HookRequest
from dmtwatch.fhir.client import PATIENT_SEARCHES, FhirClient, FhirClientError, next_link

TOKEN = "{{context.patientId}}"


def _key(resource_type: str) -> str:
    """`MedicationStatement` -> `medicationStatements`."""
    return resource_type[0].lower() + resource_type[1:] + "s"


def _template(resource_type: str, param: str) -> str:
    value = TOKEN if param == "patient" else f"Patient/{TOKEN}"
    return f"{resource_type}?{param}={value}"


# key -> FHIR query, as discovery publishes them
PREFETCH: dict[str, str] = {
    "patient": f"Patient/{TOKEN}",
    **{_key(t): _template(t, p) for t, p in PATIENT_SEARCHES.items()},
}


class RequestProblem(ValueError):
    """The hook request itself is wrong (400)."""


class DataUnavailable(Exception):
    """The patient's data could be neither prefetched nor fetched (412)."""


@dataclass
class Gathered:
    resources: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # prefetch keys still to read
    pages: list[str] = field(default_factory=list)  # next links of partial prefetch Bundles


def render(template: str, patient_id: str) -> str:
    return template.replace(TOKEN, patient_id)


def _bundle_resources(key: str, bundle: dict) -> list[dict]:
    out = []
    for entry in bundle.get("entry") or []:
        if not isinstance(entry, dict):
            raise RequestProblem(f"prefetch '{key}': a Bundle entry is not an object")
        resource = entry.get("resource")
        mode = (entry.get("search") or {}).get("mode", "match")
        if isinstance(resource, dict) and mode == "match":
            out.append(resource)
    return out


def from_prefetch(request: HookRequest) -> Gathered:
    """What the prefetch holds, and which keys (or further pages) are still missing."""
    given = request.prefetch or {}
    out = Gathered()
    for key in PREFETCH:
        if key not in given:
            out.missing.append(key)
            continue
        value = given[key]
        if value is None:
            continue  # the EHR has nothing for this template
        if not isinstance(value, dict) or "resourceType" not in value:
            raise RequestProblem(f"prefetch '{key}' is not a FHIR resource")
        kind = value["resourceType"]
        if kind == "OperationOutcome":
            out.missing.append(key)
        elif kind == "Bundle":
            out.resources += _bundle_resources(key, value)
            following = next_link(value)
            if following is not None:
                out.pages.append(following)
        else:
            out.resources.append(value)
    return out


def gather(request: HookRequest, patient_id: str) -> list[dict] | None:
    """The patient's resources, or None when only a database could still supply them."""
    got = from_prefetch(request)
    if not got.missing and not got.pages:
        return got.resources
    if request.fhirServer is None:
        return None
    token = request.fhirAuthorization.access_token if request.fhirAuthorization else None
    try:
        with FhirClient(request.fhirServer, token) as client:
            for key in got.missing:
                query = render(PREFETCH[key], patient_id)
                if key == "patient":
                    got.resources.append(client.get(query))
                else:
                    got.resources += client.pages(query, {"_count": "1000"})
            for page in got.pages:
                got.resources += client.pages(page)
    except FhirClientError as e:
        raise DataUnavailable(f"the FHIR server could not be read: {e}") from None
    return got.resources


def what_is_missing(request: HookRequest) -> str:
    got = from_prefetch(request)
    parts = []
    if got.missing:
        parts.append("prefetch lacks " + ", ".join(f"'{k}'" for k in got.missing))
    if got.pages:
        parts.append(f"{len(got.pages)} prefetched search(es) have further pages")
    return "; ".join(parts) + " and the request gives no fhirServer"
