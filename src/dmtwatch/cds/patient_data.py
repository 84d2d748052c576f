"""One patient's FHIR resources for a hook call: prefetch first, then the EHR's FHIR server.

The specification leaves it to the service to check what was prefetched: a missing key
was not satisfied (or failed), `null` means there is nothing to fetch, and an
OperationOutcome is a failed prefetch. Whatever is missing is read from `fhirServer`;
with no server, the caller decides (the database, or 412).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dmtwatch.cds.models import HookRequest
from dmtwatch.errors import DmtwatchError
from dmtwatch.fhir.client import (
    PATIENT_SEARCHES,
    FhirClient,
    FhirClientError,
    OutboundPolicy,
    ShapeError,
    match_resources,
    next_link,
)

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


class RequestProblem(DmtwatchError, ValueError):
    """The hook request itself is wrong (400)."""


class DataUnavailable(DmtwatchError):
    """The patient's data could be neither prefetched nor fetched (412)."""


@dataclass
class Gathered:
    resources: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # prefetch keys still to read
    pages: list[str] = field(default_factory=list)  # next links of partial prefetch Bundles


def render(template: str, patient_id: str) -> str:
    return template.replace(TOKEN, patient_id)


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
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            raise RequestProblem(f"prefetch '{key}' is not a FHIR resource")
        kind = value["resourceType"]
        if kind == "OperationOutcome":
            out.missing.append(key)
        elif kind == "Bundle":
            try:
                out.resources += match_resources(value)
                following = next_link(value)
            except ShapeError as e:
                raise RequestProblem(f"prefetch '{key}': {e}") from None
            if following is not None:
                out.pages.append(following)
        else:
            out.resources.append(value)
    return out


def gather(
    request: HookRequest, patient_id: str, policy: OutboundPolicy | None = None
) -> list[dict] | None:
    """The patient's resources, or None when only a database could still supply them.
    `policy`: where the service may fetch from (none: nowhere)."""
    got = from_prefetch(request)
    if not got.missing and not got.pages:
        return got.resources
    if request.fhirServer is None:
        return None
    token = request.fhirAuthorization.access_token if request.fhirAuthorization else None
    policy = policy or OutboundPolicy()
    try:
        with FhirClient(request.fhirServer, token, policy=policy) as client:
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
