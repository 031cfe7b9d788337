"""FastAPI app serving the registered champion.

    uvicorn app.main:app                               # development
    gunicorn -c app/gunicorn_conf.py app.main:app      # production (make serve-prod)

Nothing is read at import: the lifespan reads the settings (FD_* variables,
src/common/settings.py) and the config (FD_CONFIG, else the one the exported champion was
registered with), then builds the ModelService that the routes get through `get_service`,
and the handle of the online feature store GET /flights reads (opened at its first use).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.requests import ClientDisconnect

from app import batch_fast_path, metrics
from app.middleware import CORSFromConfig, ObserveAndLimit
from app.routes import predictions, router
from app.schemas import MAX_ERRORS
from src.common.config import Config
from src.common.errors import PipelineError
from src.common.logs import setup_logging
from src.common.paths import Paths, get_paths
from src.common.settings import Settings
from src.serving.loader import registry_for, serving_config
from src.serving.prediction_log import PredictionLogger
from src.serving.service import ModelService
from src.serving.watcher import AliasWatcher

if TYPE_CHECKING:
    from src.featurestore.online import OnlineStore

log = logging.getLogger("app")
ServiceFactory = Callable[[Settings, Config, Paths], ModelService]


def default_service(settings: Settings, cfg: Config, paths: Paths) -> ModelService:
    """The export in models/champion/ at once (else the registry), then the aliases watched
    (@challenger scored in the shadow); every prediction logged to data/predictions/."""
    logger = PredictionLogger(paths.predictions, on_scores=metrics.observe_scores)
    svc = ModelService(
        cfg.serve.threshold,
        logger,
        on_swap=metrics.show_model,
        on_registry=metrics.show_registry,
    )
    svc.watcher = AliasWatcher(svc, cfg, paths, registry_for(cfg, paths, settings))
    svc.watcher.start(cfg.serve.reload_seconds)
    return svc


class OnlineStoreHandle:
    """The online feature store of GET /flights: Redis when FD_REDIS_URL is set, else the
    SQLite file Paths.online_store. Opened once per process at its first use (not at
    start-up: the store's code imports pandas), shared by the threads, closed at shutdown.
    A missing file is not created (the API only reads). Until it opens, `get` raises
    StoreUnavailable (503) and tries again on the next call; the reason, which may name a
    path or a URL, goes to the log, not to the caller."""

    def __init__(self, settings: Settings, paths: Paths):
        self.url, self.path = settings.redis_url, paths.online_store
        self.store: OnlineStore | None = None
        self.lock = threading.Lock()

    @property
    def reads_locally(self) -> bool:
        """Open, and a SQLite file: its reads touch no network (GET /flights on the loop)."""
        return self.store is not None and self.url is None

    def get(self) -> OnlineStore:
        with self.lock:
            if self.store is None:
                self.store = self.open()
            return self.store

    def open(self) -> OnlineStore:
        import sqlite3

        from src.featurestore.online import StoreUnavailable, open_store

        if self.url is None and not self.path.is_file():
            raise StoreUnavailable("no online store yet: run `python -m src.feed` first")
        try:
            return open_store("sqlite" if self.url is None else "redis", self.path, self.url)
        except (PipelineError, OSError, sqlite3.Error) as exc:
            log.error("cannot open the online store: %s", exc)
            raise StoreUnavailable("the online store cannot be opened (see the API's log)") from exc

    def close(self) -> None:
        with self.lock:
            if self.store is not None:
                self.store.close()
                self.store = None


def create_app(
    service_factory: ServiceFactory = default_service, config: Config | None = None
) -> FastAPI:
    """The app. `config` replaces the one the lifespan would read (tests, the loop)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        setup_logging()  # the app's own INFO lines (reloads) under uvicorn and gunicorn
        settings, paths = Settings(), get_paths()
        app.state.settings = settings
        app.state.config = config or serving_config(settings, paths)
        app.state.service = await run_in_threadpool(
            service_factory, settings, app.state.config, paths
        )
        app.state.online_store = OnlineStoreHandle(settings, paths)
        yield
        app.state.service.close()  # stops the alias watcher, flushes the prediction log
        app.state.online_store.close()

    # FastAPI's default /docs loads Swagger UI from a CDN; these assets ship with the package.
    app = FastAPIOffline(
        title="Flight delay API",
        description="Probability that a flight from NYC departs 15+ minutes late.",
        version="1.0",
        lifespan=lifespan,
    )
    app.add_middleware(ObserveAndLimit)
    app.add_middleware(CORSFromConfig)  # added last: outermost, so preflights get CORS too
    # Starlette types a handler as taking any Exception, not the one it is registered for
    # (Kludex/starlette#2417).
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnect, client_gone)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, internal_error)
    app.include_router(batch_fast_path.router)  # first: it answers only when switched on
    app.include_router(router)
    app.include_router(predictions)
    return app


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, with the first MAX_ERRORS errors and how many there are in all, and
    without echoing the input: a non-finite number in it (NaN, Infinity, which Python's JSON
    parser accepts) cannot be written back as JSON."""
    errors = exc.errors()
    shown = [{k: v for k, v in e.items() if k != "input"} for e in errors[:MAX_ERRORS]]
    body = {"detail": jsonable_encoder(shown), "error_count": len(errors)}
    return JSONResponse(body, status_code=422)


async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
    """The client left before its body arrived (or was cut off as too slow,
    app/slow_clients.py): nothing to answer, nothing to log as an error."""
    log.info(
        "client gone before its body arrived: %s, request %s",
        request.url.path,
        request.state.request_id,
    )
    return Response(status_code=400)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette answers this outside the middleware, so the request id is added here.
    request_id = request.state.request_id
    log.exception("unhandled error on %s, request %s", request.url.path, request_id)
    headers = {"X-Request-ID": request_id}  # the trace stays in the log, under this id
    return JSONResponse({"detail": "internal server error"}, status_code=500, headers=headers)


app = create_app()
