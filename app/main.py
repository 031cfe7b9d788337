"""FastAPI app serving the registered champion.

    uvicorn app.main:app                               # development
    gunicorn -c app/gunicorn_conf.py app.main:app      # production (make serve-prod)

Environment: FD_CONFIG (default configs/default.yml), FD_API_KEY (when set, /predict*
need a matching X-API-Key header), FD_BENCH_ECHO=1 (adds /bench/echo for `make bench`).
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable
from contextlib import asynccontextmanager

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one OpenMP thread per worker on small hosts

import anyio  # noqa: E402
import anyio.to_thread  # noqa: E402
import orjson  # noqa: E402
from fastapi import Depends, FastAPI, HTTPException, Request, Security  # noqa: E402
from fastapi.concurrency import run_in_threadpool  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.middleware.cors import CORSMiddleware  # noqa: E402
from fastapi.openapi.utils import get_openapi  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402
from fastapi.security import APIKeyHeader  # noqa: E402
from fastapi_offline import FastAPIOffline  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from app import metrics  # noqa: E402
from app.prediction_log import PredictionLogger  # noqa: E402
from app.reload import AliasWatcher  # noqa: E402
from app.schemas import (  # noqa: E402
    BatchRequest,
    BatchResponse,
    Flight,
    ModelInfo,
    PredictionResponse,
    ReadyResponse,
    columns_if_valid,
)
from app.service import ModelService  # noqa: E402
from src.common.config import Config, load_config  # noqa: E402
from src.common.logs import setup_logging  # noqa: E402
from src.common.paths import DEFAULT_CONFIG, get_paths  # noqa: E402

log = logging.getLogger("app")
# Batches are scored one at a time per worker, in a thread: the GIL lets no two run at once,
# so more threads would only share the CPU (raising every batch's latency) and hold more
# parsed batches in memory. Meanwhile the event loop keeps reading requests and answering
# /health and single flights.
BATCH_THREADS = 1


def default_config() -> Config:
    return load_config(os.environ.get("FD_CONFIG", DEFAULT_CONFIG))


def default_service() -> ModelService:
    """The export in models/champion/ at once (else the registry), then the alias watched."""
    cfg, paths = default_config(), get_paths()
    svc = ModelService(None, cfg.serve.threshold, PredictionLogger(paths.predictions))
    svc.watcher = AliasWatcher(svc, cfg, paths)
    svc.watcher.start_serving(cfg.serve.reload_seconds)
    return svc


def json_response(body: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def api_key_guard(expected: str | None):
    """Dependency for /predict*: no-op when FD_API_KEY is unset; constant-time compare."""
    header = APIKeyHeader(name="X-API-Key", auto_error=False)

    async def check(key: str | None = Security(header)) -> None:  # async: no thread hop
        if expected and not (key and hmac.compare_digest(key.encode(), expected.encode())):
            raise HTTPException(401, "missing or wrong X-API-Key", {"WWW-Authenticate": "ApiKey"})

    return check


def create_app(
    service_factory: Callable[[], ModelService] = default_service, cfg: Config | None = None
) -> FastAPI:
    cfg = cfg or default_config()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        setup_logging()  # the app's own INFO lines (reloads) under uvicorn and gunicorn
        app.state.batch_limiter = anyio.CapacityLimiter(BATCH_THREADS)  # needs a running loop
        app.state.service = await run_in_threadpool(service_factory)
        yield
        app.state.service.close()  # stops the alias watcher, flushes the prediction log

    # FastAPI's default /docs loads Swagger UI from a CDN; these assets ship with the package.
    app = FastAPIOffline(
        title="Flight delay API",
        description="Probability that a flight from NYC departs 15+ minutes late.",
        version="1.0",
        lifespan=lifespan,
    )
    app.add_middleware(metrics.ObserveAndLimit, max_body_bytes=cfg.serve.max_body_bytes)
    if cfg.serve.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cfg.serve.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key"],
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)  # the trace stays in the log
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    guarded = [Depends(api_key_guard(os.environ.get("FD_API_KEY")))]

    def service() -> ModelService:
        svc: ModelService = app.state.service
        if not svc.ready:
            raise HTTPException(503, "no model loaded: run the pipeline (make smoke) first")
        return svc

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready", response_model=ReadyResponse)
    async def ready():
        svc = service()
        m = svc.champion
        body = {"status": "ready", "model_version": m.version, "source": m.source}
        return json_response({**body, "registry": svc.registry.as_dict()})

    @app.get("/model", response_model=ModelInfo)
    async def model_info():
        svc = service()
        m = svc.champion
        return json_response(
            {
                "name": m.name,
                "version": m.version,
                "alias": m.alias,
                "source": m.source,
                "run_id": m.run_id,
                "data_manifest_sha256": m.metadata.get("data_manifest_sha256"),
                "git_commit": m.metadata.get("git_commit"),
                "metrics": m.metadata.get("metrics", {}),
                "loaded_at": m.loaded_at,
                "registry": svc.registry.as_dict(),
                "metadata": m.metadata,
            }
        )

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    # One flight costs ~0.2 ms of CPU: scored on the event loop (a thread hop costs as much).
    @app.post("/predict", response_model=PredictionResponse, dependencies=guarded)
    async def predict(flight: Flight):  # type: ignore[valid-type]
        svc = service()
        request_id, p, champ = svc.predict_one(flight.model_dump())
        delayed = p >= svc.threshold
        metrics.count_predictions(champ.version, int(delayed), 1)
        return json_response(
            {
                "request_id": request_id,
                "delay_probability": p,
                "delayed": delayed,
                "threshold": svc.threshold,
                "model_name": champ.name,
                "model_version": champ.version,
            }
        )

    # A 1000-flight batch costs ~15-30 ms: parsing, validation and scoring run in the thread
    # pool, so the event loop keeps answering /health and single flights meanwhile.
    @app.post(
        "/predict/batch",
        response_model=BatchResponse,
        dependencies=guarded,
        openapi_extra={"requestBody": json_body("BatchRequest")},
    )
    async def predict_batch(request: Request):
        raw = await request.body()
        return await anyio.to_thread.run_sync(score_batch, raw, limiter=app.state.batch_limiter)

    def score_batch(raw: bytes) -> Response:
        svc = service()
        cols = parse_batch(raw)
        n = len(cols["year"])
        if n > cfg.serve.max_batch:
            raise HTTPException(413, f"{n} flights exceed the batch limit of {cfg.serve.max_batch}")
        request_id, proba, champ = svc.predict_many(cols)
        delayed = proba >= svc.threshold
        metrics.count_predictions(champ.version, int(delayed.sum()), n)
        return json_response(
            {
                "request_id": request_id,
                "threshold": svc.threshold,
                "model_name": champ.name,
                "model_version": champ.version,
                "predictions": [
                    {"delay_probability": p, "delayed": d}
                    for p, d in zip(proba.tolist(), delayed.tolist(), strict=True)
                ],
            }
        )

    if os.environ.get("FD_BENCH_ECHO") == "1":
        # The HTTP stack's ceiling for `make bench`: same body validation, no model.
        @app.post("/bench/echo", include_in_schema=False, dependencies=guarded)
        async def echo(flight: Flight):  # type: ignore[valid-type]
            return json_response({"delay_probability": 0.5, "delayed": True})

    app.openapi = lambda: with_schemas(app, BatchRequest)
    return app


def json_body(model_name: str) -> dict:
    ref = {"$ref": f"#/components/schemas/{model_name}"}
    return {"required": True, "content": {"application/json": {"schema": ref}}}


def parse_batch(raw: bytes) -> dict[str, list]:
    """A valid body takes the column-wise fast path; anything else gets BatchRequest's
    record-by-record validation and its 422 (or, equally, its acceptance)."""
    try:
        cols = columns_if_valid(orjson.loads(raw))
    except orjson.JSONDecodeError:
        cols = None
    return cols if cols is not None else parse(BatchRequest, raw).as_columns()


def parse(model, raw: bytes):
    """pydantic's own JSON parser (about 2x json.loads + validate); FastAPI-style 422s."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def with_schemas(app: FastAPI, *models) -> dict:
    """OpenAPI schema plus the models of bodies parsed by hand (see json_body)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(definition.pop("$defs", {}))
            components[model.__name__] = definition
        app.openapi_schema = schema
    return app.openapi_schema


app = create_app()
