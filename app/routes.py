"""The API's routes. Each gets the ModelService through `Depends(get_service)`; bodies are
parsed by FastAPI into the models of app/schemas.py (a batch by app/batch_fast_path.py first,
when its switch is on). The POST routes are `Guarded`: the key and the content type are
checked before the body is read."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from app import metrics
from app.schemas import (
    BatchRequest,
    BatchResponse,
    BoardOrigin,
    CarrierCode,
    Departure,
    DeparturesBoard,
    ExplainFlag,
    Explanation,
    FeaturesFlag,
    Flight,
    FlightNumber,
    FlightPrediction,
    FlightProblem,
    LocalDate,
    ModelInfo,
    ModelLineage,
    OriginChoice,
    Prediction,
    PredictionResponse,
    ReadyResponse,
    WindowHours,
    WindowStart,
)
from src.common.schema import API_REQUEST_FIELDS
from src.model.model import NotExplainable
from src.serving.loader import LoadedModel
from src.serving.service import ModelService

if TYPE_CHECKING:  # the store's code imports pandas: imported at the first call, not here
    from src.featurestore.departures import BoardRow

router = APIRouter()
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


async def get_service(request: Request) -> ModelService:
    """The app's ModelService, once it serves a model; 503 until then. (async: a plain
    function would cost every request a hop to the thread pool.)"""
    service: ModelService = request.app.state.service
    if not service.ready:
        raise HTTPException(503, "no model loaded: run the pipeline (make smoke) first")
    return service


async def require_api_key(request: Request) -> None:
    """X-API-Key must match FD_API_KEY when it is set (compared in constant time). (async:
    as a GET route's dependency, a plain function would cost each request a hop to the
    thread pool.)"""
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    key = request.headers.get("x-api-key", "")
    if not hmac.compare_digest(key.encode(), expected.get_secret_value().encode()):
        raise HTTPException(401, "missing or wrong X-API-Key", {"WWW-Authenticate": "ApiKey"})


def require_json(request: Request) -> None:
    """Bodies are JSON, declared so: a page may post text/plain or a form to any origin
    without a CORS preflight, never application/json."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise HTTPException(415, "the body must be JSON, sent as Content-Type: application/json")


class Guarded(APIRoute):
    """A route that checks the API key (401), then the content type (415), before FastAPI
    reads the body: a caller without the key gets nothing parsed."""

    def get_route_handler(self):
        parse_and_answer = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            await require_api_key(request)
            require_json(request)
            return await parse_and_answer(request)

        return guarded


# The POST routes. The header is declared for the OpenAPI schema (the docs' Authorize
# button); Guarded checks it.
predictions = APIRouter(route_class=Guarded, dependencies=[Security(api_key_header)])
Service = Annotated[ModelService, Depends(get_service)]


@router.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready")
async def ready(svc: Service) -> ReadyResponse:
    m = svc.loaded_champion()
    return ReadyResponse(
        status="ready",
        model_version=m.version,
        source=m.source,
        shadow_version=shadow_version(svc),
        registry=svc.registry.as_dict(),
    )


@router.get("/model")
async def model_info(svc: Service) -> ModelInfo:
    m, shadow = svc.loaded_champion(), svc.shadow  # read once: the watcher may swap them
    return ModelInfo(
        **lineage(m).model_dump(),
        shadow_version=None if shadow is None else shadow.version,
        registry=svc.registry.as_dict(),
        metadata=m.metadata,
        challenger=None if shadow is None else lineage(shadow),
    )


def lineage(m: LoadedModel) -> ModelLineage:
    return ModelLineage(
        name=m.name,
        version=m.version,
        alias=m.alias,
        source=m.source,
        run_id=m.run_id,
        data_manifest_sha256=m.metadata.get("data_manifest_sha256"),
        git_commit=m.metadata.get("git_commit"),
        metrics=m.metadata.get("metrics", {}),
        loaded_at=m.loaded_at,
    )


def shadow_version(svc: ModelService) -> str | None:
    shadow = svc.shadow  # read once: the watcher may swap it meanwhile
    return None if shadow is None else shadow.version


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request) -> Response:
    body, content_type = metrics.exposition(request.app.state.settings.prometheus_multiproc_dir)
    return Response(body, media_type=content_type)


# One flight costs a fraction of a millisecond of CPU, its explanation (TreeSHAP over every
# tree) about as much again: both on the event loop, since a hop to the thread pool would
# cost about as much as the scoring.
# exclude_unset: `explanation` is in an answer only when asked for (?explain=true).
@predictions.post("/predict", response_model_exclude_unset=True)
async def predict(
    flight: Flight, request: Request, svc: Service, explain: ExplainFlag = False
) -> PredictionResponse:
    return scored(svc, flight.model_dump(), request.state.request_id, explain)


EXPLAIN_TOP_K = 3  # the reasons an explanation gives


def scored(
    svc: ModelService, record: dict, request_id: str, explain: bool = False
) -> PredictionResponse:
    """One flight (API_REQUEST fields) scored, counted and logged under `request_id` (set
    by app.middleware.ObserveAndLimit); explained by the same model when `explain`."""
    extra = {}
    if explain:
        try:
            p, why, champ = svc.predict_and_explain_one(record, request_id, EXPLAIN_TOP_K)
        except NotExplainable as exc:
            raise HTTPException(501, f"no explanation: {exc}") from None
        extra["explanation"] = Explanation.model_validate(why.as_dict())
    else:
        p, champ = svc.predict_one(record, request_id)
    delayed = p >= svc.threshold
    metrics.count_predictions(champ.version, int(delayed), 1)
    return PredictionResponse(
        request_id=request_id,
        delay_probability=p,
        delayed=delayed,
        threshold=svc.threshold,
        model_name=champ.name,
        model_version=champ.version,
        **extra,
    )


FLIGHT_PROBLEMS = {code: {"model": FlightProblem} for code in (404, 409, 503)}


# On the event loop when the store is an open SQLite file: its reads of a local file cost
# less than the scoring, and the hop to the thread pool cost a quarter of the route's
# requests/s (docs/feature-store.md). Redis reads are network round trips and opening the
# store imports pandas: those run in the thread pool.
@router.get(
    "/flights/{carrier}/{number}/{day}",
    response_model=FlightPrediction,
    responses=FLIGHT_PROBLEMS,  # type: ignore[arg-type]
    dependencies=[Security(api_key_header), Depends(require_api_key)],
    response_model_exclude_unset=True,
)
async def flight_by_number(
    carrier: CarrierCode,
    number: FlightNumber,
    day: LocalDate,
    request: Request,
    svc: Service,
    origin: OriginChoice = None,
    explain: ExplainFlag = False,
    features: FeaturesFlag = False,
) -> FlightPrediction | JSONResponse:
    """Score a flight known by its number and New York date, with the features the online
    store holds at its clock (`python -m src.feed` fills it); with `features`, answer the
    record scored too, for a caller's what-if through POST /predict."""
    args = (request, svc, carrier, number, day, origin, explain, features)
    if not request.app.state.online_store.reads_locally:
        return await run_in_threadpool(flight_answer, *args)
    return flight_answer(*args)


def flight_answer(
    request: Request,
    svc: ModelService,
    carrier: str,
    number: int,
    day: date,
    origin: str | None,
    explain: bool,
    features: bool,
) -> FlightPrediction | JSONResponse:
    """GET /flights' answer: the flight's features from the online store, scored."""
    from src.featurestore import flights  # pandas: at the first call, not at start-up
    from src.featurestore.online import StoreUnavailable

    try:
        store = request.app.state.online_store.get()
        found = flights.flight_features(store, carrier, number, day, origin)
    except flights.FlightError as exc:
        status = 404 if isinstance(exc, flights.FlightNotFound) else 409
        return JSONResponse({"detail": str(exc), **exc.details}, status)
    except StoreUnavailable as exc:
        return JSONResponse({"detail": str(exc)}, 503)
    answer = scored(svc, found.record, request.state.request_id, explain)
    extra = {"features": found.record} if features else {}  # set only when asked (exclude_unset)
    return FlightPrediction(
        **answer.model_dump(exclude_unset=True),
        **extra,
        **{k: found.record[k] for k in ("carrier", "flight", "origin", "dest")},
        sched_dep=found.sched_dep,
        as_of=found.as_of,
        lead_hours=found.lead_hours,
        feature_age_s=found.ages_s,
    )


# A plain `def`, as GET /flights: the store's reads block. No explanations here: one costs
# milliseconds, a board holds hundreds; GET /flights?explain=true explains one flight.
@router.get(
    "/departures/{origin}",
    response_model=DeparturesBoard,
    responses={503: {"model": FlightProblem}},
    dependencies=[Security(api_key_header), Depends(require_api_key)],
)
def departures_board(
    origin: BoardOrigin,
    request: Request,
    svc: Service,
    start: WindowStart = None,
    hours: WindowHours = 6.0,
) -> DeparturesBoard | JSONResponse:
    """The departures from an NYC airport scheduled in a window (default: the store's
    clock to 6 h later), each with its status at the clock; the ones still to leave are
    scored in one batch, on the features GET /flights reads for each."""
    from src.featurestore import departures  # pandas: at the first call, as GET /flights
    from src.featurestore.online import StoreUnavailable

    try:
        store = request.app.state.online_store.get()
        board = departures.board(store, origin, start, hours)
    except StoreUnavailable as exc:
        return JSONResponse({"detail": str(exc)}, 503)
    records = board.records
    if records:  # one model call for the board, scored, counted and logged as a batch
        cols = {f: [r[f] for r in records] for f in API_REQUEST_FIELDS}
        limit = request.app.state.config.serve.max_batch
        answer = batch_response(svc, cols, limit, request.state.request_id)
        model, threshold = (answer.model_name, answer.model_version), answer.threshold
        predictions = iter(answer.predictions)
    else:  # nothing to score: no model call, nothing logged
        champ = svc.loaded_champion()
        model, threshold, predictions = (champ.name, champ.version), svc.threshold, iter([])
    rows = [departure_row(row, predictions) for row in board.rows]
    return DeparturesBoard(
        request_id=request.state.request_id,
        origin=origin,
        start=board.start,
        end=board.end,
        as_of=board.as_of,
        threshold=threshold,
        model_name=model[0],
        model_version=model[1],
        flights=rows,
    )


def departure_row(row: BoardRow, predictions: Iterator[Prediction]) -> Departure:
    """A board row as the answer says it; a scheduled one takes the next prediction (the
    batch holds the scheduled rows in the board's order)."""
    prediction = {}
    if row.features is not None:
        p = next(predictions)
        prediction = {
            "delay_probability": p.delay_probability,
            "delayed": p.delayed,
            "lead_hours": row.features.lead_hours,
        }
    return Departure(
        carrier=row.carrier,
        flight=row.flight,
        origin=row.origin,
        dest=row.dest,
        sched_dep=row.sched_dep,
        sched_dep_local=row.sched_dep_local,
        status=row.status,
        departed=row.departed,
        dep_delay=row.dep_delay,
        **prediction,
    )


# The plain path (serve.fast_paths.batch_parse off; app/batch_fast_path.py when on): FastAPI
# parses the body with BatchRequest. A plain `def`, so FastAPI scores it in its thread pool
# and the event loop keeps answering health checks and single flights meanwhile.
@predictions.post("/predict/batch")
def predict_batch(body: BatchRequest, request: Request, svc: Service) -> BatchResponse:
    limit = request.app.state.config.serve.max_batch
    return batch_response(svc, body.as_columns(), limit, request.state.request_id)


def batch_response(
    svc: ModelService, cols: dict[str, list], limit: int, request_id: str
) -> BatchResponse:
    """Score flights given as columns (413 over `limit`), count them, log them under
    `request_id`, answer."""
    n = len(cols["year"])
    if n > limit:
        raise HTTPException(413, f"{n} flights exceed the batch limit of {limit}")
    proba, champ = svc.predict_many(cols, request_id)
    delayed = proba >= svc.threshold
    metrics.count_predictions(champ.version, int(delayed.sum()), len(proba))
    predictions = [
        {"delay_probability": p, "delayed": d}
        for p, d in zip(proba.tolist(), delayed.tolist(), strict=True)
    ]
    return BatchResponse(
        request_id=request_id,
        threshold=svc.threshold,
        model_name=champ.name,
        model_version=champ.version,
        predictions=predictions,
    )


async def bench_echo_enabled(request: Request) -> None:
    """/bench/echo is a 404 unless FD_BENCH_ECHO=1 (checked before the body is parsed)."""
    if not request.app.state.settings.bench_echo:
        raise HTTPException(404, "Not Found")


@predictions.post(
    "/bench/echo", include_in_schema=False, dependencies=[Depends(bench_echo_enabled)]
)
async def echo(flight: Flight) -> dict:
    """The HTTP stack's ceiling for `make bench`: the same body parsing, no model."""
    return {"delay_probability": 0.5, "delayed": True}
