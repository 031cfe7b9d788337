"""FastAPI app serving the registered champion: `uvicorn app.main:app`."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import asynccontextmanager

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one OpenMP thread per worker on small hosts

from fastapi import FastAPI, HTTPException  # noqa: E402
from fastapi.concurrency import run_in_threadpool  # noqa: E402
from fastapi_offline import FastAPIOffline  # noqa: E402

from app.prediction_log import PredictionLogger  # noqa: E402
from app.schemas import (  # noqa: E402
    BatchRequest,
    BatchResponse,
    Flight,
    ModelInfo,
    Prediction,
    PredictionResponse,
)
from app.service import ModelService  # noqa: E402
from src.champion import load_champion  # noqa: E402
from src.common.config import load_config  # noqa: E402
from src.common.errors import PipelineError  # noqa: E402
from src.common.paths import DEFAULT_CONFIG, get_paths  # noqa: E402

log = logging.getLogger("app")


def default_service() -> ModelService:
    """Config from FD_CONFIG (default configs/default.yml); champion from registry or export."""
    cfg, paths = load_config(os.environ.get("FD_CONFIG", DEFAULT_CONFIG)), get_paths()
    try:
        loaded = load_champion(cfg, paths)
    except PipelineError as exc:
        log.error("no model loaded: %s", exc)
        loaded = None
    return ModelService(loaded, cfg.serve.threshold, PredictionLogger(paths.predictions))


def create_app(service_factory: Callable[[], ModelService] = default_service) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.service = await run_in_threadpool(service_factory)
        yield
        app.state.service.close()  # flushes the prediction log

    # FastAPI's default /docs loads Swagger UI from a CDN; these assets ship with the package.
    app = FastAPIOffline(
        title="Flight delay API",
        description="Probability that a flight from NYC departs 15+ minutes late.",
        version="1.0",
        lifespan=lifespan,
    )

    def service() -> ModelService:
        svc: ModelService = app.state.service
        if not svc.ready:
            raise HTTPException(503, "no model loaded: run the pipeline (make smoke) first")
        return svc

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    def ready() -> dict:
        svc = service()
        return {"status": "ready", "model_version": svc.loaded.version, "source": svc.loaded.source}

    @app.get("/model", response_model=ModelInfo)
    def model_info() -> ModelInfo:
        m = service().loaded
        return ModelInfo(
            name=m.name,
            version=m.version,
            alias=m.alias,
            source=m.source,
            run_id=m.run_id,
            loaded_at=m.loaded_at,
            metadata=m.metadata,
        )

    @app.post("/predict", response_model=PredictionResponse)
    def predict(flight: Flight) -> PredictionResponse:  # type: ignore[valid-type]
        svc = service()
        request_id, proba = svc.predict([flight.model_dump()])
        p = float(proba[0])
        return PredictionResponse(
            request_id=request_id,
            delay_probability=p,
            delayed=p >= svc.threshold,
            threshold=svc.threshold,
            model_name=svc.loaded.name,
            model_version=svc.loaded.version,
        )

    @app.post("/predict/batch", response_model=BatchResponse)
    def predict_batch(body: BatchRequest) -> BatchResponse:
        svc = service()
        request_id, proba = svc.predict([f.model_dump() for f in body.flights])
        return BatchResponse(
            request_id=request_id,
            threshold=svc.threshold,
            model_name=svc.loaded.name,
            model_version=svc.loaded.version,
            predictions=[
                Prediction(delay_probability=float(p), delayed=bool(p >= svc.threshold))
                for p in proba
            ],
        )

    return app


app = create_app()
