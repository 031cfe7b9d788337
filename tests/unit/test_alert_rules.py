"""The alert rules (monitoring/prometheus/alerts.yml): valid for promtool, passing their unit
tests (alerts_test.yml), and every alert both tested firing and tested quiet. promtool is
Debian's (`make system-deps`); without it these skip, or fail when CI is set. And the Grafana
files fit together (whether each panel's query returns data is
tests/integration/test_monitoring_stack.py's job)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from src.common.paths import ROOT
from tests.integration.monitoring_support import (
    ALERT_RULES,
    ALERT_TESTS,
    DASHBOARD,
    MONITORING,
    PROMETHEUS_CONFIG,
    dashboard_queries,
    read_dashboard,
    tool,
)

SEVERITIES = {"critical", "warning"}


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("promtool"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules():
    done = promtool("check", "rules", str(ALERT_RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_check_prometheus_config():
    """The compose stack's prometheus.yml, which loads alerts.yml."""
    done = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_test_rules():
    done = promtool("test", "rules", str(ALERT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_quiet():
    """A rule without a case that fires could be dead; without a quiet case (a neighbour
    or an earlier time), one that always fires would pass."""
    cases = [
        case
        for test in yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for rule in alert_rules():
        name = rule["alert"]
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case.get("exp_alerts") for case in mine), f"{name}: no case where it fires"
        assert any(not case.get("exp_alerts") for case in mine), f"{name}: no quiet case"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_severity_and_text(rule):
    assert rule["alert"].startswith("FlightDelay"), "one prefix: the dashboard lists them by it"
    assert rule.get("labels", {}).get("severity") in SEVERITIES, rule["alert"]
    assert {"summary", "description"} <= set(rule.get("annotations", {})), rule["alert"]


def test_grafana_provisioning_fits_the_dashboard_and_compose():
    """The panels name the provisioned datasource's uid; the provider reads the folder
    compose mounts the dashboards into."""
    provisioning = MONITORING / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    provider = yaml.safe_load((provisioning / "dashboards" / "flight-delay.yml").read_text())
    folder = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./{DASHBOARD.parent.relative_to(ROOT)}:{folder}:ro" in mounts

    dashboard = read_dashboard()
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']}: wider than the dashboard"
    assert len(list(dashboard_queries(dashboard))) >= 20
