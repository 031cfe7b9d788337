"""The alerts Prometheus has firing now (GET /api/v1/alerts at FD_PROMETHEUS_URL, default
http://127.0.0.1:9090; the rules are monitoring/prometheus/alerts.yml). Anything but an
answer in Prometheus's shape becomes a plain sentence, never a stack trace."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from dashboard.client import UNREACHABLE
from dashboard.text import moment

DEFAULT_URL = "http://127.0.0.1:9090"
TIMEOUT_S = 5.0  # a page waits this long at most for Prometheus


def prometheus_url() -> str:
    return (os.environ.get("FD_PROMETHEUS_URL") or DEFAULT_URL).rstrip("/")


@dataclass
class Alerts:
    """Prometheus's answer: the firing alerts as table rows and how many are pending
    (their rule's `for:` not yet over), or `problem`, a sentence, when there is none."""

    firing: list[dict[str, str]] = field(default_factory=list)
    pending: int = 0
    problem: str = ""


def fetch(base: str | None = None) -> Alerts:
    base = (base or prometheus_url()).rstrip("/")
    try:
        request = urllib.request.Request(
            f"{base}/api/v1/alerts", headers={"Accept": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            doc = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # it answered: its error body says why
        with exc:
            return parse(json_or_text(exc.read()), base)
    except UNREACHABLE as exc:  # a URL without a scheme, down, or not HTTP; bad JSON too
        why = getattr(exc, "reason", exc)
        return Alerts(
            problem=f"Prometheus is not reachable at {base} ({why}). Start it with "
            "`docker compose --profile monitoring up`, or point FD_PROMETHEUS_URL at a running one."
        )
    return parse(doc, base)


def json_or_text(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")


def parse(doc: Any, base: str) -> Alerts:
    """Prometheus's {"status": "success", "data": {"alerts": [...]}}: each alert's labels
    (alertname, severity, ...), annotations (summary), state ("firing" or "pending") and
    activeAt."""
    data = doc.get("data") if isinstance(doc, dict) else None
    alerts = data.get("alerts") if isinstance(data, dict) else None
    if not isinstance(alerts, list) or doc.get("status") != "success":
        why = doc.get("error") if isinstance(doc, dict) and doc.get("error") else doc
        return Alerts(problem=f"Prometheus at {base} did not list its alerts: {str(why)[:200]}")
    states = [(a, a.get("state")) for a in alerts if isinstance(a, dict)]
    firing = [alert_row(a) for a, state in states if state == "firing"]
    return Alerts(firing, pending=sum(state == "pending" for _, state in states))


def alert_row(alert: dict) -> dict[str, str]:
    labels = dict(alert.get("labels") or {})
    name, severity = labels.pop("alertname", "?"), labels.pop("severity", "–")
    return {
        "alert": name,
        "severity": severity,
        "since": moment(alert.get("activeAt")),
        "summary": (alert.get("annotations") or {}).get("summary", ""),
        "labels": ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "–",
    }
