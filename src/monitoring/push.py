"""The monitoring cycle's figures, pushed to a Prometheus Pushgateway once at the end (a
batch job cannot be scraped), grouped by model: a push replaces the previous cycle's. The
alert rules (monitoring/prometheus/alerts.yml) and the dashboard read these names."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

JOB = "flight-delay-cycle"
DECISIONS = ("promote", "reject", "none")
HELP = {  # every gauge a cycle pushes, with its help text
    "fd_cycle_drift_score": "Drift distance per column, window vs reference",
    "fd_cycle_drift_share": "Share of the drift columns that drifted",
    "fd_cycle_drift_alert": "1 when the drift rule fired",
    "fd_cycle_performance_alert": "1 when a performance alarm fired",
    "fd_cycle_window_roc_auc": "Champion's ROC AUC on the labelled window",
    "fd_cycle_live_roc_auc": "ROC AUC on joined live rows",
    "fd_cycle_live_calibration_gap": "Mean prediction minus observed delay rate"
    " on joined live rows",
    "fd_cycle_live_calibration_error": "Expected calibration error (10 equal-width bins)"
    " on joined live rows",
    "fd_cycle_live_rows": "Logged predictions of the window by outcome",
    "fd_cycle_decision": "1 for the decision this cycle made",
    "fd_cycle_champion_version": "The @champion version after the cycle",
    "fd_cycle_as_of_timestamp_seconds": "The cycle's --as-of date",
    "fd_cycle_last_success_timestamp_seconds": "When the cycle last finished",
}


def cycle_registry(summary: dict) -> CollectorRegistry:
    """The summary (src/cycle.py) as gauges in a registry of their own."""
    registry = CollectorRegistry()

    def gauge(name: str, labels=()) -> Gauge:
        return Gauge(name, HELP[name], labels, registry=registry)

    drift, performance, live = summary["drift"], summary["performance"], summary["live"]
    score = gauge("fd_cycle_drift_score", ["column"])
    for column, value in drift["column_scores"].items():
        score.labels(column).set(value)
    gauge("fd_cycle_drift_share").set(drift["drift_share"])
    gauge("fd_cycle_drift_alert").set(drift["drift_detected"])
    gauge("fd_cycle_performance_alert").set(bool(performance["alerts"]))
    gauge("fd_cycle_window_roc_auc").set(performance["roc_auc"])
    live_auc = gauge("fd_cycle_live_roc_auc", ["role", "version"])
    gap = gauge("fd_cycle_live_calibration_gap", ["role", "version"])
    ece = gauge("fd_cycle_live_calibration_error", ["role", "version"])
    for row in live["figures"]:
        if row["roc_auc"] is not None:
            live_auc.labels(row["role"], row["version"]).set(row["roc_auc"])
        gap.labels(row["role"], row["version"]).set(row["calibration_gap"])
        ece.labels(row["role"], row["version"]).set(row["ece"])
    rows = gauge("fd_cycle_live_rows", ["state"])
    for state in ("joined", "cancelled", "unmatched"):
        rows.labels(state).set(live["counts"][state])
    decision = gauge("fd_cycle_decision", ["decision"])
    for name in DECISIONS:
        decision.labels(name).set(summary["decision"] == name)
    gauge("fd_cycle_champion_version").set(int(summary["champion_version"]))
    as_of = datetime.fromisoformat(summary["as_of"]).replace(tzinfo=UTC)
    gauge("fd_cycle_as_of_timestamp_seconds").set(as_of.timestamp())
    gauge("fd_cycle_last_success_timestamp_seconds").set(time.time())
    return registry


def push_cycle(gateway: str, summary: dict) -> None:
    """Push the summary's figures; raises OSError (URLError) when the gateway is down."""
    registry = cycle_registry(summary)
    push_to_gateway(gateway, job=JOB, registry=registry, grouping_key={"model": summary["model"]})
