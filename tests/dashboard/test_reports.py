"""The Model health page's parsing, as plain functions: the loop's months with their ECE,
the drift reports found, the model card's JSON tables, and Prometheus's alerts answer
(the shape of prometheus.io/docs/prometheus/latest/querying/api/#alerts)."""

from __future__ import annotations

import numpy as np

from dashboard import alerts, reports
from src.tracking.runs import reliability

BASE = "http://127.0.0.1:9090"


def month(m: int, **extra) -> dict:
    return {"month": m, "serving_version": "1", "loop_auc": 0.75, "frozen_auc": 0.74, **extra}


def test_the_loops_ece_is_read_when_every_month_holds_it():
    both = {"months": [month(8, loop_ece=0.02631, frozen_ece=0.03)]}
    [row] = reports.loop_rows(both)
    assert (row["ECE loop"], row["ECE frozen"], row["gap"]) == (0.0263, 0.03, 0.01)
    assert reports.loop_has_ece(both)
    older = {"months": [month(8, loop_ece=0.02, frozen_ece=0.03), month(9)]}
    assert not reports.loop_has_ece(older) and reports.loop_rows(older)[1]["ECE loop"] is None
    assert not reports.loop_has_ece({"months": []})


def test_drift_reports_are_found_by_batch(tmp_path):
    assert reports.drift_reports(tmp_path) == {}
    for batch in ("2013-09", "log-2026-12-07", "2013-03"):
        (tmp_path / "drift" / batch).mkdir(parents=True)
    (tmp_path / "drift" / "2013-09" / "report.html").write_text("<html></html>")
    (tmp_path / "drift" / "2013-03" / "report.html").write_text("<html></html>")
    found = reports.drift_reports(tmp_path)
    assert list(found) == ["2013-03", "2013-09"]  # a folder without a report is left out
    assert found["2013-09"] == tmp_path / "drift" / "2013-09" / "report.html"


def test_the_reliability_points_are_the_filled_bins():
    p = np.array([0.05, 0.07, 0.55, 0.95, 0.0])
    y = np.array([0, 1, 1, 1, 0])
    rows = reports.reliability_rows(reliability(y, p))
    assert [r["bin"] for r in rows] == ["0.0–0.1", "0.5–0.6", "0.9–1.0"]
    assert [r["flights"] for r in rows] == [3, 1, 1]
    assert rows[0]["mean prediction"] == 0.04 and rows[0]["observed delay rate"] == 0.3333


def test_the_card_data_is_read_beside_the_card(tmp_path):
    assert reports.card_data("slices", "m", tmp_path) is None
    (tmp_path / "model_card").mkdir()
    (tmp_path / "model_card" / "m.slices.json").write_text('{"slices": []}')
    assert reports.card_data("slices", "m", tmp_path) == {"slices": []}
    assert reports.card_data_path("reliability", "m", tmp_path).name == "m.reliability.json"


def test_a_slice_without_an_auc_shows_a_dash_and_other_names_its_members():
    one_class = {"dimension": "weather", "slice": "other", "members": "x, y", "rows": 12}
    one_class |= {"base_rate": 0.0, "mean_prediction": 0.1, "roc_auc": None}
    one_class |= {"roc_auc_low": None, "roc_auc_high": None, "log_loss": 0.12345}
    [row] = reports.slice_rows({"slices": [one_class]})
    assert row["slice"] == "other (x, y)" and row["ROC AUC"] is None
    assert row["95% interval"] == "–" and row["log loss"] == 0.1235


def test_prometheus_alerts_firing_are_rows_and_pending_ones_counted():
    firing = {
        "labels": {"alertname": "FlightDelayAPIDown", "instance": "api:8000", "job": "api",
                   "severity": "critical"},
        "annotations": {"summary": "Flight-delay API api:8000 is down"},
        "state": "firing", "activeAt": "2026-12-07T21:58:40.5Z", "value": "0e+00",
    }  # fmt: skip
    pending = {"labels": {"alertname": "X"}, "annotations": {}, "state": "pending"}
    found = alerts.parse({"status": "success", "data": {"alerts": [firing, pending]}}, BASE)
    assert found.problem == "" and found.pending == 1
    assert found.firing == [
        {
            "alert": "FlightDelayAPIDown",
            "severity": "critical",
            "since": "2026-12-07 21:58 UTC",
            "summary": "Flight-delay API api:8000 is down",
            "labels": "instance=api:8000, job=api",
        }
    ]


def test_anything_but_prometheuss_answer_is_a_sentence():
    error = {"status": "error", "errorType": "unavailable", "error": "TSDB not ready"}
    assert (
        alerts.parse(error, BASE).problem
        == f"Prometheus at {BASE} did not list its alerts: TSDB not ready"
    )
    for doc in ([], "<html>", {"status": "success", "data": {"alerts": None}}):
        found = alerts.parse(doc, BASE)
        assert found.problem.startswith(f"Prometheus at {BASE} did not list its alerts")
        assert not found.firing
