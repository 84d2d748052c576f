"""The CDS Hooks 2.0 service, called over real HTTP like an EHR would.

`dmtwatch serve` and the test FHIR server (tests/fhir_server.py) run as separate processes
on free loopback ports; nothing of ours is mocked. The specification's own JSON examples
(../shared/data/cds-hooks, v2.0.1 and the 3.0 ballot) are read in place and must parse
and round-trip through our models.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from dmtwatch.cds import cards as card_text
from dmtwatch.cds.models import (
    Action,
    Card,
    CardsResponse,
    Coding,
    Discovery,
    FeedbackRequest,
    FhirAuthorization,
    HookRequest,
    Jwk,
    JwkSet,
    JwtClaims,
    JwtHeader,
    Source,
    dump,
)
from dmtwatch.cds.patient_data import PREFETCH
from dmtwatch.fhir.client import (
    FhirClient,
    FhirClientError,
    fetch_all_resources,
    fetch_patient_resources,
)
from tests import cds_patients as P
from tests.fhir_server import fhir_server, free_port, running

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cds-hooks"
SERVICE = "/cds-services/dmtwatch-monitoring"
TOKEN = "synthetic-access-token-7f3a"
TODAY = dt.date.today()

# --- the specification's examples ---------------------------------------------------------

# Examples that break the specification's own REQUIRED fields; our models keep the rule.
DEVIATIONS = {
    ("v2.0.1", "index__15_system-action.json"): ("systemActions", 0, "description"),
    ("v2.0.1", "index__17_example.json"): ("cards", 0, "indicator"),
    ("v3.0.0-ballot", "index__18_system-action.json"): ("systemActions", 0, "description"),
    ("v3.0.0-ballot", "index__20_example.json"): ("cards", 0, "indicator"),
}


def _examples() -> list[Path]:
    return sorted(SHARED.glob("*/*.json")) if SHARED.is_dir() else []


def _model_for(data: dict):
    """(type to validate with, the part of the example it covers)."""
    keys = set(data)
    if "services" in keys:
        return Discovery, data
    if "hookInstance" in keys:
        return HookRequest, data
    if "cards" in keys:
        return CardsResponse, data
    if "feedback" in keys:
        return FeedbackRequest, data
    if keys == {"source"}:
        return Source, data["source"]
    if keys == {"overrideReasons"}:
        return TypeAdapter(list[Coding]), data["overrideReasons"]
    if keys == {"fhirAuthorization"}:
        return FhirAuthorization, data["fhirAuthorization"]
    if "type" in keys and "description" in keys:
        return Action, data
    if keys == {"prefetch"}:
        values = data["prefetch"].values()
        if all(isinstance(v, str) for v in values):  # templates, as discovery lists them
            return TypeAdapter(dict[str, str]), data["prefetch"]
        return TypeAdapter(HookRequest.model_fields["prefetch"].annotation), data["prefetch"]
    if keys == {"context"}:
        return TypeAdapter(HookRequest.model_fields["context"].annotation), data["context"]
    # client authentication (tests/test_cds_auth.py signs and verifies with these)
    if "alg" in keys and "kty" not in keys:
        return JwtHeader, data
    if "iss" in keys:
        return JwtClaims, data
    if keys == {"keys"}:
        return JwkSet, data
    if "kty" in keys:
        return Jwk, data
    return None, None


def _roundtrip(model, part):
    if isinstance(model, TypeAdapter):
        parsed = model.validate_python(part)
        return model.dump_python(parsed, mode="json", exclude_none=True)
    return dump(model.model_validate(part))


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent (../shared beside the repo)")
@pytest.mark.parametrize("path", _examples(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_specification_example_round_trips(path: Path) -> None:
    data = json.loads(path.read_text())
    model, part = _model_for(data)
    assert model is not None, f"no model for an example with keys {sorted(data)}"
    deviation = DEVIATIONS.get((path.parent.name, path.name))
    if deviation is not None:
        with pytest.raises(ValidationError) as refused:
            _roundtrip(model, part)
        assert refused.value.errors()[0]["loc"] == deviation
        return
    assert _roundtrip(model, part) == part
    if isinstance(model, type) and issubclass(model, (HookRequest, FeedbackRequest)):
        parsed = model.model_validate(part)
        assert not parsed.model_extra, "every field of the example is a declared field"


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent (../shared beside the repo)")
def test_deviating_examples_round_trip_once_completed() -> None:
    for (version, name), loc in DEVIATIONS.items():
        data = json.loads((SHARED / version / name).read_text())
        target = data[loc[0]][loc[1]]
        target[loc[2]] = "Apply the update" if loc[2] == "description" else "info"
        assert dump(CardsResponse.model_validate(data)) == data


def test_models_refuse_what_the_specification_forbids() -> None:
    source = {"label": "dmtwatch"}
    with pytest.raises(ValidationError, match="selectionBehavior"):
        Card.model_validate(
            {"summary": "x", "indicator": "info", "source": source, "suggestions": [{"label": "y"}]}
        )
    with pytest.raises(ValidationError, match="summary"):
        Card.model_validate({"summary": "x" * 140, "indicator": "info", "source": source})
    with pytest.raises(ValidationError, match="indicator"):
        Card.model_validate({"summary": "x", "indicator": "hard-stop", "source": source})
    with pytest.raises(ValidationError, match="needs the resource"):
        Action.model_validate({"type": "create", "description": "x"})


def test_summary_is_cut_below_140_characters() -> None:
    finding = {"code": "MON-OVERDUE", "test": "cbc", "title": "Full blood count " * 20}
    text = card_text.summary(finding)
    assert len(text) < 140 and text.startswith("MON-OVERDUE (cbc): Full blood count")
    assert text.endswith("…")


# --- processes ----------------------------------------------------------------------------


def _serve(args: list[str] = ()):
    port = free_port()
    command = [sys.executable, "-m", "dmtwatch", "serve", "--port", str(port), *args]
    base = f"http://127.0.0.1:{port}"
    return running(command, f"{base}/cds-services"), base


SANDBOX = "https://sandbox.cds-hooks.org"


@pytest.fixture(scope="module")
def served(ehr_fhir):
    """`dmtwatch serve` on a free loopback port: its base URL and process. It may read the
    test EHR's FHIR server (allow-listed: the service reads no FHIR server by default) and
    answers browsers from the CDS Hooks sandbox only (no CORS origin by default)."""
    context, base = _serve(["--fhir-allow", ehr_fhir, "--allow-origin", SANDBOX])
    with context as process:
        yield base, process


@pytest.fixture(scope="module")
def service(served) -> str:
    return served[0]


@pytest.fixture(scope="module")
def records() -> dict[str, list[dict]]:
    return {
        "relapse": P.relapse_without_mri("cds-relapse", TODAY),
        "quiet": P.monitored("cds-quiet", TODAY),
    }


@pytest.fixture(scope="module")
def ehr_fhir(tmp_path_factory, records):
    """The EHR's FHIR server (bearer token required, 20 resources a page): its base URL."""
    folder = tmp_path_factory.mktemp("ehr")
    for name, resources in records.items():
        lines = "\n".join(json.dumps(r) for r in resources)
        (folder / f"{name}.ndjson").write_text(lines + "\n")
    with fhir_server(folder, token=TOKEN, page_size=20) as base:
        yield base


def _call(pid: str, **fields) -> dict:
    return {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/example", "patientId": pid},
        **fields,
    }


def _post(service: str, body, path: str = SERVICE) -> httpx.Response:
    if isinstance(body, bytes | str):
        return httpx.post(
            service + path, content=body, headers={"Content-Type": "application/json"}, timeout=60
        )
    return httpx.post(service + path, json=body, timeout=60)


# --- discovery ----------------------------------------------------------------------------


def test_discovery_lists_the_patient_view_service(service) -> None:
    answer = httpx.get(f"{service}/cds-services", timeout=10)
    assert answer.status_code == 200
    listed = Discovery.model_validate(answer.json()).services
    assert [(s.id, s.hook) for s in listed] == [("dmtwatch-monitoring", "patient-view")]
    prefetch = listed[0].prefetch
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    for kind in ("Condition", "MedicationAdministration", "MedicationStatement", "Procedure"):
        assert f"{kind}?patient={{{{context.patientId}}}}" in prefetch.values()
    assert "Observation?patient={{context.patientId}}" in prefetch.values()
    assert "AdverseEvent?subject=Patient/{{context.patientId}}" in prefetch.values()


# --- patient-view -------------------------------------------------------------------------


def _the_mri_card(answer: httpx.Response, pid: str) -> dict:
    assert answer.status_code == 200, answer.text
    cards = answer.json()["cards"]
    assert [c["summary"].split(":")[0] for c in cards] == ["CNS-MRI"], cards
    card = cards[0]
    Card.model_validate(card)
    assert len(card["summary"]) < 140
    assert card["indicator"] == "critical"
    relapse_day = (TODAY - dt.timedelta(days=12)).isoformat()
    assert f"Relapse on {relapse_day}" in card["detail"]
    assert f"| relapses | {relapse_day} | relapse onset |" in card["detail"]
    assert "dmtwatch" in card["source"]["label"]
    assert "Alemtuzumab" in card["source"]["label"]
    assert card["selectionBehavior"] == "at-most-one"
    (action,) = card["suggestions"][0]["actions"]
    assert action["type"] == "create"
    order = action["resource"]
    assert order["resourceType"] == "ServiceRequest"
    assert order["subject"] == {"reference": f"Patient/{pid}"}
    assert "contrast" in order["code"]["coding"][0]["code"]
    return card


def _valid_r4(resource: dict) -> None:
    from fhir.resources.R4B.servicerequest import ServiceRequest

    ServiceRequest.model_validate(resource)


def test_relapse_without_mri_gives_a_critical_card_with_an_mri_order(service, records) -> None:
    body = _call("cds-relapse", prefetch=P.prefetch(records["relapse"]))
    card = _the_mri_card(_post(service, body), "cds-relapse")
    _valid_r4(card["suggestions"][0]["actions"][0]["resource"])
    (link,) = card["links"]
    assert link["type"] == "absolute" and link["url"] == card["source"]["url"]
    page = httpx.get(link["url"], timeout=10)
    assert page.status_code == 200 and page.text.startswith("# CNS-MRI")
    # the same record again: the same card (ids are stable per finding)
    assert _post(service, body).json()["cards"] == [card]


def test_a_monitored_patient_without_findings_gets_no_cards(service, records) -> None:
    answer = _post(service, _call("cds-quiet", prefetch=P.prefetch(records["quiet"])))
    assert answer.status_code == 200
    assert answer.json() == {"cards": []}


def test_without_prefetch_the_fhir_server_is_read_with_the_bearer_token(service, ehr_fhir) -> None:
    auth = {
        "access_token": TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "dmtwatch",
    }
    body = _call("cds-relapse", fhirServer=ehr_fhir, fhirAuthorization=auth)
    _the_mri_card(_post(service, body), "cds-relapse")
    served = httpx.get(f"{ehr_fhir}/__log", timeout=10).json()
    mine = [r for r in served if "cds-relapse" in json.dumps(r)]
    assert mine and all(r["authorization"] == f"Bearer {TOKEN}" for r in mine)
    assert {r["path"] for r in mine} >= {"/Patient/cds-relapse", "/Observation", "/Condition"}
    assert any("_offset" in r["query"] for r in mine), "the 84 resources span several pages"


def test_a_partial_prefetch_is_completed_from_the_fhir_server(service, ehr_fhir, records) -> None:
    given = P.prefetch(records["relapse"])
    partial = {k: given[k] for k in ("patient", "observations")}
    auth = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300}
    auth |= {"scope": "patient/*.read", "subject": "dmtwatch"}
    body = _call("cds-relapse", prefetch=partial, fhirServer=ehr_fhir, fhirAuthorization=auth)
    _the_mri_card(_post(service, body), "cds-relapse")


def test_a_refused_token_is_a_412_naming_the_server_answer(service, ehr_fhir) -> None:
    auth = {"access_token": "expired", "token_type": "Bearer", "expires_in": 300}
    auth |= {"scope": "patient/*.read", "subject": "dmtwatch"}
    answer = _post(service, _call("cds-relapse", fhirServer=ehr_fhir, fhirAuthorization=auth))
    assert answer.status_code == 412
    assert "HTTP 401" in answer.json()["error"] and "expired" not in answer.text


def test_no_prefetch_no_server_no_database_is_a_412(service) -> None:
    answer = _post(service, _call("cds-relapse"))
    assert answer.status_code == 412
    assert "prefetch lacks 'patient'" in answer.json()["error"]


def test_a_record_the_reader_refuses_gives_a_not_evaluated_card(service, records) -> None:
    bad = P.lab("cds-relapse", "creatinine", TODAY, 70.0)
    bad["id"], bad["valueQuantity"]["code"] = "bad-unit", "furlong"
    prefetch = P.prefetch([*records["relapse"], bad])
    answer = _post(service, _call("cds-relapse", prefetch=prefetch))
    assert answer.status_code == 200
    (card,) = answer.json()["cards"]
    assert card["indicator"] == "warning" and "could not check" in card["summary"]
    assert "Observation/bad-unit" in card["detail"] and "furlong" in card["detail"]


MALFORMED = {
    "not JSON": (b'{"hook": "patient-view", ', "not JSON"),
    "not an object": (b"[1, 2]", "JSON object"),
    "no hook": ({"hookInstance": "x", "context": {"patientId": "p"}}, "hook"),
    "no context": ({"hook": "patient-view", "hookInstance": "x"}, "context"),
    "no patientId": (
        {"hook": "patient-view", "hookInstance": "x", "context": {"userId": "Practitioner/1"}},
        "context.patientId",
    ),
    "another hook": (
        {"hook": "order-sign", "hookInstance": "x", "context": {"patientId": "p"}},
        "order-sign",
    ),
    "token without server": (
        {
            "hook": "patient-view",
            "hookInstance": "x",
            "context": {"patientId": "p"},
            "fhirAuthorization": {
                "access_token": "t",
                "token_type": "Bearer",
                "expires_in": 1,
                "scope": "s",
                "subject": "x",
            },
        },
        "fhirServer",
    ),
    "prefetch not a resource": (
        {"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p"}}
        | {"prefetch": {"patient": "p"}},
        "prefetch 'patient'",
    ),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_calls_get_400_with_the_reason(service, name: str) -> None:
    body, reason = MALFORMED[name]
    answer = _post(service, body)
    assert answer.status_code == 400, answer.text
    assert reason in answer.json()["error"]


def test_cors_preflight_and_responses_allow_browser_clients(service) -> None:
    """The configured origin (--allow-origin) is named back, never '*'; another is not."""
    origin = SANDBOX
    preflight = httpx.options(
        service + SERVICE,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
            "Access-Control-Request-Private-Network": "true",
        },
        timeout=10,
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-private-network"] == "true"
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    discovery = httpx.get(f"{service}/cds-services", headers={"Origin": origin}, timeout=10)
    assert discovery.headers["access-control-allow-origin"] == origin
    evil = {"Origin": "https://evil.example"}
    elsewhere = httpx.get(f"{service}/cds-services", headers=evil, timeout=10)
    assert "access-control-allow-origin" not in elsewhere.headers


def test_feedback_is_accepted_and_logged(served) -> None:
    service, process = served
    example = {
        "feedback": [
            {
                "card": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
                "outcomeTimestamp": "2021-12-11T10:05:31Z",
            }
        ]
    }
    assert _post(service, example, f"{SERVICE}/feedback").status_code == 200
    logged = process.output.read_text()
    assert "feedback: card 4e0a3a1e-3283-4575-ab82-028d55fe2719 accepted" in logged
    wrong = _post(service, {"feedback": [{"card": "x", "outcome": "liked"}]}, f"{SERVICE}/feedback")
    assert wrong.status_code == 400 and "outcome" in wrong.json()["error"]


def test_an_unknown_service_is_a_404(service) -> None:
    assert _post(service, _call("p"), "/cds-services/other").status_code == 404


# --- the results cache --------------------------------------------------------------------


def test_a_record_is_read_once_and_evaluated_once_a_day(records) -> None:
    """Repeat views on a day come from the cache; on a later day only the engine runs
    (the reader's result does not depend on the day); a changed record is read again."""
    from dmtwatch.cds.evaluate import Evaluator
    from dmtwatch.fhir.read import read_fhir_resources

    reads: list[int] = []

    def read(resources: list[dict]):
        reads.append(len(resources))
        return read_fhir_resources(resources).dataset

    pid, record = "cds-relapse", records["relapse"]
    later = TODAY + dt.timedelta(days=200)
    cached = Evaluator(cache_size=8)
    first = cached.from_resources(record, pid, TODAY, read)
    assert cached.from_resources(record, pid, TODAY, read) == first
    assert (cached.hits, cached.misses, len(reads)) == (1, 1, 1)
    on_a_later_day = cached.from_resources(record, pid, later, read)
    assert (cached.misses, len(reads)) == (2, 1)  # evaluated again, not read again
    fresh = Evaluator(cache_size=0).from_resources(record, pid, later, read)
    assert on_a_later_day == fresh and on_a_later_day != first
    changed = [*record, P.lab(pid, "tsh", TODAY - dt.timedelta(days=1), 1.2)]
    cached.from_resources(changed, pid, TODAY, read)
    assert len(reads) == 3  # fresh's read, then the changed record's


# --- the database as source ---------------------------------------------------------------


def test_serve_db_answers_from_the_store_and_replays_an_earlier_day(tmp_path, records) -> None:
    from dmtwatch.fhir.read import read_fhir_resources
    from dmtwatch.store import save

    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    save(read_fhir_resources(records["relapse"] + records["quiet"]).dataset, url)
    context, base = _serve(["--db", url])
    with context:
        _the_mri_card(_post(base, _call("cds-relapse")), "cds-relapse")
        assert _post(base, _call("cds-quiet")).json() == {"cards": []}
        assert _post(base, _call("not-in-the-clinic")).json() == {"cards": []}
        before = (TODAY - dt.timedelta(days=30)).isoformat()
        replay = _call("cds-relapse", extension={"dmtwatch.asOf": before})
        assert _post(base, replay).json() == {"cards": []}, "the relapse is later than as-of"


def test_serve_db_worklist_follows_an_import_made_while_serving(tmp_path, records) -> None:
    """Chart views are answered from the day's worklist of the whole store; an import
    while the service runs must show at the next view, not after the worklist's age."""
    from dmtwatch.fhir.read import read_fhir_resources
    from dmtwatch.store import save

    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    save(read_fhir_resources(records["quiet"]).dataset, url)
    context, base = _serve(["--db", url])
    with context:
        assert _post(base, _call("cds-relapse")).json() == {"cards": []}, "not stored yet"
        save(read_fhir_resources(records["relapse"]).dataset, url)
        _the_mri_card(_post(base, _call("cds-relapse")), "cds-relapse")
        assert _post(base, _call("cds-quiet")).json() == {"cards": []}


def test_serve_refuses_a_database_that_is_not_a_store(tmp_path) -> None:
    import subprocess

    missing = f"sqlite:///{tmp_path / 'none.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "dmtwatch", "serve", "--db", missing],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "no such database" in done.stderr


# --- the FHIR client ----------------------------------------------------------------------


def test_client_reads_one_patient_across_pages(ehr_fhir, records) -> None:
    got = fetch_patient_resources(ehr_fhir, "cds-relapse", token=TOKEN)
    expected = records["relapse"]
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in expected)


def test_client_keeps_the_query_of_a_url_when_adding_parameters(ehr_fhir, records) -> None:
    with FhirClient(ehr_fhir, TOKEN) as client:
        got = list(client.pages("Observation?patient=cds-quiet", {"_count": "7"}))
    expected = [r for r in records["quiet"] if r["resourceType"] == "Observation"]
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in expected)


def test_client_reads_a_whole_server(ehr_fhir, records) -> None:
    got = fetch_all_resources(ehr_fhir, token=TOKEN)
    expected = records["relapse"] + records["quiet"]
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in expected)


def test_client_errors_say_what_failed_without_the_token(ehr_fhir) -> None:
    with pytest.raises(FhirClientError) as refused:
        fetch_patient_resources(ehr_fhir, "cds-relapse", token="wrong-token")
    assert refused.value.status == 401 and "wrong-token" not in str(refused.value)
    with FhirClient(ehr_fhir, TOKEN) as client, pytest.raises(FhirClientError) as missing:
        client.read("Patient", "nobody")
    assert missing.value.status == 404 and "nobody is not known" in str(missing.value)
    with pytest.raises(FhirClientError, match="ConnectError"):
        fetch_all_resources(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(FhirClientError, match="http"):
        FhirClient("file:///etc")


def test_prefetch_keys_cover_every_resource_type_the_profile_reads() -> None:
    types = {t.split("?")[0].split("/")[0] for t in PREFETCH.values()}
    assert types == {
        "Patient",
        "Condition",
        "MedicationAdministration",
        "MedicationStatement",
        "Procedure",
        "Observation",
        "AdverseEvent",
    }


@pytest.mark.parametrize(
    ("severity", "facts", "orders"),
    [
        ("urgent", {"onset_date": "2016-01-02"}, True),  # no scan
        ("high", {"onset_date": "2015-06-02"}, True),  # no scan, the alarm aged
        # a late scan: the facts name it, whatever the severity says
        ("info", {"onset_date": "2016-01-02", "scan_date": "2016-02-01"}, False),
        ("urgent", {"onset_date": "2016-01-02", "scan_date": "2016-02-01"}, False),
    ],
)
def test_an_mri_order_is_offered_while_no_scan_exists_aged_or_not(severity, facts, orders) -> None:
    from dmtwatch.cds.cards import _mri_rule
    from dmtwatch.protocols.schema import load_protocol

    rule = load_protocol("alemtuzumab").relapse_imaging[0]
    finding = {"code": "CNS-MRI", "protocol": "alemtuzumab", "severity": severity, "facts": facts}
    assert (_mri_rule(finding) is rule) is orders
