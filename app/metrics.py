"""Prometheus metrics (recorded by app/middleware.py and the routes, served on /metrics).

Under gunicorn every worker has its own counters; app/gunicorn_conf.py sets
PROMETHEUS_MULTIPROC_DIR so /metrics aggregates all workers (prometheus-client's
multiprocess mode). Run alone (uvicorn), the process registry is used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
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

from src.serving.loader import CHAMPION

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
    "1 for the model version each live worker serves, by role (champion, or challenger: "
    "scored in the shadow)",
    ["name", "version", "source", "role"],
    multiprocess_mode="livemax",
)
SCORE_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
SCORES = Histogram(
    "fd_prediction_score",
    "Delay probabilities given, by role (champion, challenger) and model version; recorded "
    "when the prediction log is written, off the request path",
    ["role", "version"],
    buckets=SCORE_BUCKETS,
)
BASELINE = Gauge(
    "fd_model_baseline_mean_score",
    "The served champion's mean delay probability out of sample (validation, else the gate's "
    "window): what fd_prediction_score's mean is compared with",
    ["version"],
    multiprocess_mode="livemax",
)
REGISTRY_REACHABLE = Gauge(
    "fd_registry_reachable",
    "1 if the last registry poll answered, else 0 (the lowest over live workers)",
    multiprocess_mode="livemin",
)
BASELINE_METRICS = ("validation_mean_prediction", "gate_window_mean_prediction")


def count_predictions(version: str, delayed: int, total: int) -> None:
    if delayed:
        PREDICTIONS.labels("delayed", version).inc(delayed)
    if total - delayed:
        PREDICTIONS.labels("on_time", version).inc(total - delayed)


def show_model(role: str, old, new) -> None:
    """A model changed in `role` (src.serving.service's on_swap); new is None when the
    challenger is removed."""
    if old is not None:
        MODEL.labels(old.name, old.version, old.source, role).set(0)
    if new is None:
        return
    MODEL.labels(new.name, new.version, new.source, role).set(1)
    if role == CHAMPION:
        metrics = new.metadata.get("metrics", {})
        baseline = next((metrics[k] for k in BASELINE_METRICS if k in metrics), None)
        if baseline is not None:
            BASELINE.labels(new.version).set(baseline)


def show_registry(reachable: bool) -> None:
    REGISTRY_REACHABLE.set(1 if reachable else 0)


def observe_scores(role: str, version: str, proba: np.ndarray) -> None:
    """Every probability into fd_prediction_score (the prediction log's on_scores, in its
    flush thread, off the request path). One `observe()` per value: prometheus-client has no
    public call that adds many values at once."""
    observe = SCORES.labels(role, version).observe
    for p in proba.tolist():
        observe(p)


def exposition(multiprocess_dir: Path | None) -> tuple[bytes, str]:
    """The metrics text: all workers' when they write to `multiprocess_dir`."""
    if multiprocess_dir is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(multiprocess_dir))
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
