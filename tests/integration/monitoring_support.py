"""Helpers for the monitoring tests (tests/unit/test_alert_rules.py and
tests/integration/test_monitoring_stack.py): where the monitoring files are, Debian's
Prometheus tools, and a small client of Prometheus's HTTP API. Every wait is bounded."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from src.common.paths import ROOT

MONITORING = ROOT / "monitoring"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
ALERT_RULES = MONITORING / "prometheus" / "alerts.yml"
ALERT_TESTS = MONITORING / "prometheus" / "alerts_test.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "flight-delay.json"

# Grafana's built-in interval variables, as the test substitutes them: 1 m covers several
# of the test's 1 s scrapes, as $__rate_interval covers several real ones.
GRAFANA_INTERVALS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def tool(name: str) -> str:
    """The path of a Debian Prometheus tool. Absent: the test skips with the reason, except
    in CI (CI set), where it fails: CI installs them (`make system-deps`)."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} not found: `make system-deps` installs Debian's prometheus packages"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.5):
    """Poll `condition` until it returns something truthy (returned), at most `timeout` s;
    then fail naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last: {value!r}")
        time.sleep(interval)


def wait_for_value(get: Callable[[], object], expected, timeout: float, what: str):
    """Poll `get()` until it equals `expected`, at most `timeout` s; then fail showing both."""
    deadline = time.monotonic() + timeout
    while (value := get()) != expected:
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: after {timeout:.0f} s, {value!r}; expected {expected!r}")
        time.sleep(1)
    return value


class PrometheusError(Exception):
    """Prometheus refused a query (its own message: a bad expression, a bad parameter)."""


def query(base: str, promql: str) -> list[dict]:
    """An instant query: the result vector, [{"metric": {...}, "value": [t, "v"]}, ...]."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 400/422: the body says what is wrong
        body = json.loads(exc.read() or b"{}")
    if body.get("status") != "success":
        raise PrometheusError(f"{promql!r}: {body.get('errorType')}: {body.get('error')}")
    if body["data"]["resultType"] != "vector":
        raise PrometheusError(f"{promql!r}: a {body['data']['resultType']}, not a vector")
    return body["data"]["result"]


def values(base: str, promql: str) -> dict[tuple, float]:
    """An instant query as {sorted label items (the metric name left out): value}."""
    return {
        tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(
            r["value"][1]
        )
        for r in query(base, promql)
    }


def active_alerts(base: str) -> dict[str, list[dict]]:
    """Pending and firing alerts: alert name -> the label sets of its instances."""
    found: dict[str, list[dict]] = {}
    for r in query(base, 'ALERTS{alertstate=~"pending|firing"}'):
        found.setdefault(r["metric"]["alertname"], []).append(r["metric"])
    return found


def dashboard_queries(dashboard: dict) -> Iterator[tuple[str, str, str]]:
    """(panel title, refId, PromQL with Grafana's interval variables substituted) for every
    query of every panel, those inside rows included. Any other `$variable` is an error:
    the test would not know what Grafana puts there."""
    panels = list(dashboard["panels"])
    while panels:
        panel = panels.pop(0)
        panels.extend(panel.get("panels", []))  # a collapsed row holds its panels
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            for name, value in GRAFANA_INTERVALS.items():
                expr = expr.replace(name, value)
            unknown = re.findall(r"\$\{?\w+", expr)
            assert not unknown, f"panel {panel['title']!r}: unknown variables {unknown}"
            yield panel["title"], target["refId"], expr


def read_dashboard(path: Path = DASHBOARD) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
