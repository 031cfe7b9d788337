"""Prometheus metrics, and the ASGI middleware that records them and caps request bodies.

Under gunicorn every worker has its own counters; app/gunicorn_conf.py sets
PROMETHEUS_MULTIPROC_DIR so /metrics aggregates all workers (prometheus-client's
multiprocess mode). Run alone (uvicorn), the process registry is used.
"""

from __future__ import annotations

import os
import time

import orjson
from fastapi import HTTPException
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "fd_http_requests_total", "HTTP requests by route template and status", ["route", "status"]
)
LATENCY = Histogram(
    "fd_http_request_duration_seconds",
    "Time from request start to the end of the response, by route template",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PREDICTIONS = Counter(
    "fd_predictions_total", "Flights scored, by decision and model version", ["decision", "version"]
)
MODEL = Gauge(
    "fd_model_info",
    "1 for the model version each live worker serves",
    ["name", "version", "source"],
    multiprocess_mode="livemax",
)


def count_predictions(version: str, delayed: int, total: int) -> None:
    if delayed:
        PREDICTIONS.labels("delayed", version).inc(delayed)
    if total - delayed:
        PREDICTIONS.labels("on_time", version).inc(total - delayed)


def show_model(old, new) -> None:
    if old is not None:
        MODEL.labels(old.name, old.version, old.source).set(0)
    MODEL.labels(new.name, new.version, new.source).set(1)


def exposition() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


class ObserveAndLimit:
    """Pure ASGI middleware (no per-request task, unlike BaseHTTPMiddleware): counts and
    times every request, and answers 413 to bodies over `max_body_bytes` whether or not
    they declare a Content-Length."""

    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status, received = time.perf_counter(), 500, 0
        too_large = f"request body exceeds {self.max_body_bytes} bytes"

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        async def receive_capped():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise HTTPException(413, too_large)  # FastAPI turns it into a JSON 413
            return message

        try:
            declared = dict(scope["headers"]).get(b"content-length")
            if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
                await reply_json(send_and_note, 413, {"detail": too_large})
            else:
                await self.app(scope, receive_capped, send_and_note)
        finally:
            route = scope.get("route")
            path = route.path if route is not None else "unmatched"
            REQUESTS.labels(path, str(status)).inc()
            LATENCY.labels(path).observe(time.perf_counter() - start)


async def reply_json(send, status: int, body: dict) -> None:
    payload = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
