"""The CDS Hooks 2.0 service as a FastAPI app: discovery, the patient-view service, feedback.

Status codes follow the specification: 400 for a malformed call (with the reason, never
FastAPI's 422), 412 when the patient's data can be neither prefetched nor fetched, 200
with cards otherwise; 413 for a body over the limit, 415 for a body that is not JSON
(a CORS "simple request" must not reach the service), 503 with Retry-After when the
queue of cold evaluations is full. docs/security.md gives the threat model. A FHIR record the reader refuses is answered with one "not
evaluated" card rather than an error: EHRs show nothing for errors, and nothing would read
as "no findings".
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from dmtwatch.cds import cards as card_text
from dmtwatch.cds.client_auth import ClientAuth, Unauthorized
from dmtwatch.cds.evaluate import Evaluator
from dmtwatch.cds.models import (
    CardsResponse,
    Discovery,
    FeedbackRequest,
    HookRequest,
    Service,
    dump,
)
from dmtwatch.cds.patient_data import (
    PREFETCH,
    DataUnavailable,
    RequestProblem,
    from_prefetch,
    gather,
)
from dmtwatch.cds.patient_data import what_is_missing as _missing
from dmtwatch.errors import DmtwatchError
from dmtwatch.fhir.client import OutboundPolicy
from dmtwatch.io import InputRejected
from dmtwatch.model.dataset import Dataset
from dmtwatch.protocols.loading import ProtocolSet
from dmtwatch.store.errors import StoreError

log = logging.getLogger("dmtwatch.cds")

SERVICE_ID = "dmtwatch-monitoring"
HOOK = "patient-view"
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # FHIR R4 id datatype
AS_OF_EXTENSION = "dmtwatch.asOf"  # replay a call on an earlier date (tests, audits)
PROBLEMS_SHOWN = 10
MAX_BODY = 5 * 1024 * 1024  # bytes of a request body (a whole prefetch)
COLD_WORKERS = 2  # cold evaluations run at once (CPU-bound: about one per core)
COLD_QUEUE = 2  # cold evaluations waiting; beyond, 503 at once
RETRY_AFTER = "2"  # seconds, with a 503

SERVICE = Service(
    hook=HOOK,
    id=SERVICE_ID,
    title="dmtwatch: safety monitoring on high-efficacy MS therapies",
    description=(
        "Evaluates the patient against dmtwatch's cited monitoring protocols (alemtuzumab, "
        "natalizumab): overdue and baseline tests, CTCAE-graded lab results, thyroid and "
        "renal autoimmunity, relapses without a contrast MRI, ring-enhancing lesions. "
        "One card per finding, most urgent first."
    ),
    prefetch=PREFETCH,
)

Reader = Callable[[list[dict]], Dataset]


def fhir_reader(resources: list[dict]) -> Dataset:
    """The profile's reader (imported on first use: it is the heavy part of a cold start)."""
    from dmtwatch.fhir.read import read_fhir_resources

    return read_fhir_resources(resources).dataset


class _Error(DmtwatchError):
    def __init__(self, status: int, reason: str):
        self.status = status
        self.reason = reason


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(status: int, reason: str) -> Response:
    return _json({"error": reason}, status)


def _validation_reason(e: ValidationError | RequestValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, JSON only and at most `limit` bytes (413 as soon as it is more)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise _Error(415, "the body must be JSON (Content-Type: application/json)")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _Error(413, f"the body is over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Error(413, f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _body(request: Request, model: type[BaseModel], limit: int = MAX_BODY) -> Any:
    raw = await _read_limited(request, limit)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise _Error(400, f"the body is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise _Error(400, "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise _Error(400, _validation_reason(e)) from None


def _check_call(call: HookRequest) -> tuple[str, dt.date | None]:
    """The patient id and any as-of override, or the reason the call is malformed."""
    if call.hook != HOOK:
        raise _Error(400, f"service {SERVICE_ID} answers hook '{HOOK}', not '{call.hook}'")
    patient_id = call.context.get("patientId")
    if not isinstance(patient_id, str) or not patient_id:
        raise _Error(400, "context.patientId is required for patient-view")
    if not FHIR_ID.fullmatch(patient_id):
        raise _Error(400, "context.patientId is not a FHIR id ([A-Za-z0-9-.], 1-64 characters)")
    if call.fhirAuthorization is not None and call.fhirServer is None:
        raise _Error(400, "fhirAuthorization is given without fhirServer")
    if call.fhirServer is not None and not call.fhirServer.startswith(("http://", "https://")):
        raise _Error(400, "fhirServer must be an http(s) URL")
    as_of = (call.extension or {}).get(AS_OF_EXTENSION)
    if as_of is None:
        return patient_id, None
    try:
        return patient_id, dt.date.fromisoformat(as_of)
    except (TypeError, ValueError):
        raise _Error(400, f"extension {AS_OF_EXTENSION} must be a date (YYYY-MM-DD)") from None


def create_app(
    db: str | None = None,
    *,
    read: Reader = fhir_reader,
    cache_size: int = 256,
    docs_url: str | None = None,
    cors_origins: tuple[str, ...] = (),
    today: Callable[[], dt.date] = dt.date.today,
    warm: bool = True,
    auth: ClientAuth | None = None,
    public_url: str | None = None,
    fetch: OutboundPolicy | None = None,
    max_body: int = MAX_BODY,
    cold_workers: int = COLD_WORKERS,
    cold_queue: int = COLD_QUEUE,
    protocols: ProtocolSet | None = None,
) -> FastAPI:
    """The service. `db`: a store URL to read patients the EHR sends no data for;
    `docs_url`: where the finding pages live (default: served here, under /findings/);
    `cors_origins`: the browser origins (EHRs) allowed to read answers, never '*';
    `auth`: the EHRs trusted to call (every /cds-services call then needs their JWT);
    `public_url`: the service's base URL as EHRs call it (a JWT's audience; required with
    `auth`: never taken from the Host header a caller sends);
    `fetch`: the FHIR servers the service may read (none by default);
    `max_body`: bytes of a request body; `cold_workers`/`cold_queue`: evaluations run at
    once and waiting, beyond which a call is answered 503 at once; `protocols`: the
    protocol set to evaluate by (default: the protocols in force)."""
    if "*" in cors_origins:
        raise ValueError("CORS origin '*' would let any web page read patient data")
    if auth is not None and not public_url:
        raise ValueError("client authentication needs the service's public URL (the JWT aud)")
    evaluator = Evaluator(cache_size, protocols)
    state: dict[str, Any] = {}
    cold = {"admitted": 0}
    limiter = anyio.CapacityLimiter(max(1, cold_workers))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if db is not None:
            from dmtwatch.cds.daily_worklist import DailyWorklist
            from dmtwatch.cds.store_source import PatientStore

            state["store"] = PatientStore(db)
            state["worklist"] = DailyWorklist(db, state["store"].engine, protocols)
        if warm:
            await run_in_threadpool(evaluator.warm)
            if "worklist" in state:  # today's worklist, before the first chart is opened
                await run_in_threadpool(state["worklist"].findings, "", today())
        try:
            yield
        finally:
            if "store" in state:
                state["store"].close()

    app = FastAPI(title="dmtwatch CDS Hooks", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.evaluator = evaluator
    if auth is not None:  # added before CORS, so a refusal still carries CORS headers

        @app.middleware("http")
        async def authenticate(request: Request, call_next) -> Response:
            if request.url.path.startswith("/cds-services") and request.method != "OPTIONS":
                endpoint = public_url.rstrip("/") + request.url.path
                try:
                    auth.check(request.headers.get("authorization"), endpoint)
                except Unauthorized as e:
                    log.info("refused a call: %s", e.reason)
                    refused = _error(401, e.reason)
                    refused.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
                    return refused
            return await call_next(request)

    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(cors_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Accept"],
        # a browser-based client (the CDS Hooks sandbox) calling a service on localhost
        allow_private_network=True,
        max_age=600,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> Response:
        return _error(400, _validation_reason(e))

    @app.exception_handler(_Error)
    async def _refused(request: Request, e: _Error) -> Response:
        return _error(e.status, e.reason)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, e: HTTPException) -> Response:
        return _error(e.status_code, str(e.detail))

    def doc_url(request: Request) -> Callable[[str], str]:
        here = public_url or str(request.base_url)
        base = (docs_url or here.rstrip("/") + "/findings").rstrip("/")
        return lambda code: f"{base}/{code}" if code else f"{base}/"

    @app.get("/cds-services")
    def discovery() -> Response:
        return _json(dump(Discovery(services=[SERVICE])))

    @app.post(f"/cds-services/{SERVICE_ID}")
    async def patient_view(request: Request) -> Response:
        call: HookRequest = await _body(request, HookRequest, max_body)
        patient_id, as_of = _check_call(call)
        day = as_of or today()
        urls = doc_url(request)
        known = _known(call, patient_id, day)
        if known is not None:  # a repeat view: answered here, no thread hop
            return _json(dump(CardsResponse(cards=card_text.cards(known, day.isoformat(), urls))))
        if cold["admitted"] >= max(1, cold_workers) + max(0, cold_queue):
            log.info("busy: %d cold evaluations running or queued", cold["admitted"])
            busy = _error(503, "the service is busy; retry shortly")
            busy.headers["Retry-After"] = RETRY_AFTER
            return busy
        cold["admitted"] += 1
        try:
            job = partial(_evaluate, call, patient_id, day, urls)
            answer = await anyio.to_thread.run_sync(job, limiter=limiter)
        finally:
            cold["admitted"] -= 1
        return _json(dump(answer))

    def _known(call: HookRequest, patient_id: str, day: dt.date) -> list[dict] | None:
        """Cached findings when the prefetch is complete and was evaluated before for `day`."""
        try:
            got = from_prefetch(call)
        except RequestProblem as e:
            raise _Error(400, str(e)) from None
        if got.missing or got.pages:
            return None
        return evaluator.peek(got.resources, patient_id, day)

    def _evaluate(call: HookRequest, patient_id: str, day: dt.date, urls) -> CardsResponse:
        try:
            resources = gather(call, patient_id, fetch)
        except RequestProblem as e:
            raise _Error(400, str(e)) from None
        except DataUnavailable as e:
            raise _Error(412, str(e)) from None
        try:
            if resources is not None:
                found = evaluator.from_resources(resources, patient_id, day, read)
            elif "store" in state and day == today():
                found = _from_worklist(patient_id, day)
            elif "store" in state:  # a replay of another day: this patient alone
                found = evaluator.from_dataset(_stored(patient_id), patient_id, day)
            else:
                raise _Error(412, _missing(call))
        except InputRejected as e:
            problems = [str(p) for p in e.problems]
            # the EHR's patient id need not be pseudonymous: it is not logged
            log.info("a FHIR record was refused (%d problems)", len(problems))
            card = card_text.not_evaluated(problems[:PROBLEMS_SHOWN], len(problems), urls)
            return CardsResponse(cards=[card])
        except (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError) as e:
            # a JSON shape the reader did not foresee: the caller's data, not our failure
            log.warning("a FHIR record could not be read: %s", type(e).__name__, exc_info=True)
            reason = f"the FHIR data has a shape that cannot be read ({type(e).__name__})"
            raise _Error(400, reason) from None
        return CardsResponse(cards=card_text.cards(found, day.isoformat(), urls))

    def _from_worklist(patient_id: str, day: dt.date) -> list[dict]:
        try:
            return state["worklist"].findings(patient_id, day)
        except (StoreError, SQLAlchemyError) as e:
            raise _Error(412, f"the clinic's store could not be read: {type(e).__name__}") from None

    def _stored(patient_id: str) -> Dataset:
        try:
            return state["store"].dataset(patient_id)
        except StoreError as e:
            raise _Error(412, f"the clinic's store could not be read: {e}") from None

    @app.post(f"/cds-services/{SERVICE_ID}/feedback")
    async def feedback(request: Request) -> Response:
        received: FeedbackRequest = await _body(request, FeedbackRequest, max_body)
        for item in received.feedback:
            log.info("feedback: card %s %s", item.card, item.outcome)
        return _json({})

    @app.post("/cds-services/{service_id}")
    async def unknown_service(service_id: str) -> Response:
        return _error(404, f"no CDS service '{service_id}' here; see GET /cds-services")

    @app.get("/findings/{code}")
    @app.get("/findings/", include_in_schema=False)
    def finding_page(code: str = "") -> Response:
        pages = _pages()
        page = pages.get(code or "README")
        if page is None:
            return _error(404, f"no finding code '{code}'")
        return PlainTextResponse(page, media_type="text/markdown; charset=utf-8")

    return app


_PAGES: dict[str, str] = {}


def _pages() -> dict[str, str]:
    """The finding pages, generated from the protocols (as `dmtwatch docs` writes them)."""
    if not _PAGES:
        from dmtwatch.render.finding_docs import pages

        found = pages()
        index = ["# Finding codes", ""] + [f"- [{c}]({c})" for c in sorted(found)]
        _PAGES.update(found, README="\n".join(index) + "\n")
    return _PAGES
