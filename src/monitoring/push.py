"""The monitoring cycle's figures, pushed to a Prometheus Pushgateway once at the end (a
batch job cannot be scraped), grouped by model: a push replaces the previous cycle's. The
alert rules (monitoring/prometheus/alerts.yml) and the dashboard read these names."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

JOB = "flight-delay-cycle"
DECISIONS = ("promote", "reject", "none")


def cycle_registry(summary: dict) -> CollectorRegistry:
    """The summary (src/cycle.py) as gauges in a registry of their own."""
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels=()) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    drift = summary["drift"]
    score = gauge(
        "fd_cycle_drift_score", "Drift distance per column, window vs reference", ["column"]
    )
    for column, value in drift["column_scores"].items():
        score.labels(column).set(value)
    gauge("fd_cycle_drift_share", "Share of the drift columns that drifted").set(
        drift["drift_share"]
    )
    gauge("fd_cycle_drift_alert", "1 when the drift rule fired").set(drift["drift_detected"])
    performance = summary["performance"]
    gauge("fd_cycle_performance_alert", "1 when a performance alarm fired").set(
        bool(performance["alerts"])
    )
    window_auc = gauge("fd_cycle_window_roc_auc", "Champion's ROC AUC on the labelled window")
    window_auc.set(performance["roc_auc"])
    live_auc = gauge("fd_cycle_live_roc_auc", "ROC AUC on joined live rows", ["role", "version"])
    gap = gauge(
        "fd_cycle_live_calibration_gap",
        "Mean prediction minus observed delay rate on joined live rows",
        ["role", "version"],
    )
    ece = gauge(
        "fd_cycle_live_calibration_error",
        "Expected calibration error (10 equal-width bins) on joined live rows",
        ["role", "version"],
    )
    for row in summary["live"]["figures"]:
        if row["roc_auc"] is not None:
            live_auc.labels(row["role"], row["version"]).set(row["roc_auc"])
        gap.labels(row["role"], row["version"]).set(row["calibration_gap"])
        ece.labels(row["role"], row["version"]).set(row["ece"])
    rows = gauge("fd_cycle_live_rows", "Logged predictions of the window by outcome", ["state"])
    for state in ("joined", "cancelled", "unmatched"):
        rows.labels(state).set(summary["live"]["counts"][state])
    decision = gauge("fd_cycle_decision", "1 for the decision this cycle made", ["decision"])
    for name in DECISIONS:
        decision.labels(name).set(summary["decision"] == name)
    gauge("fd_cycle_champion_version", "The @champion version after the cycle").set(
        int(summary["champion_version"])
    )
    as_of = datetime.fromisoformat(summary["as_of"]).replace(tzinfo=UTC)
    gauge("fd_cycle_as_of_timestamp_seconds", "The cycle's --as-of date").set(as_of.timestamp())
    gauge("fd_cycle_last_success_timestamp_seconds", "When the cycle last finished").set(
        time.time()
    )
    return registry


def push_cycle(gateway: str, summary: dict) -> None:
    """Push the summary's figures; raises OSError (URLError) when the gateway is down."""
    registry = cycle_registry(summary)
    push_to_gateway(gateway, job=JOB, registry=registry, grouping_key={"model": summary["model"]})
