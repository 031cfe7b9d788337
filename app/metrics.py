"""Prometheus metrics (recorded by app/middleware.py and the routes, served on /metrics).

Under gunicorn every worker has its own counters; app/gunicorn_conf.py sets
PROMETHEUS_MULTIPROC_DIR so /metrics aggregates all workers (prometheus-client's
multiprocess mode). Run alone (uvicorn), the process registry is used.
"""

from __future__ import annotations

from pathlib import Path

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


def exposition(multiprocess_dir: Path | None) -> tuple[bytes, str]:
    """The metrics text: all workers' when they write to `multiprocess_dir`."""
    if multiprocess_dir is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(multiprocess_dir))
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
