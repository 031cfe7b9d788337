"""The Model health page in Streamlit's AppTest, every input from where the page reads it:
report files written here in a temporary reports folder (FD_REPORTS_DIR) in the shapes the
stages write, Prometheus as a loopback server answering /api/v1/alerts in Prometheus's own
shape (and a closed port), the API as a loopback server answering GET /model with the API's
own schema (the fast tests) or the real API on the smoke champion (the slow one)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.schemas import ModelInfo, ModelLineage
from src.common.servers import free_port, http_json
from src.tracking.runs import reliability
from tests.dashboard.conftest import APP
from tests.dashboard.test_client import canned

TIMEOUT_S = 60  # each rerun: generous on 2 busy cores
NAME = "flight-delay"
REPORT_HTML = "<html><body><h1>Evidently drift report 2013-09</h1></body></html>"
# GET /api/v1/alerts as Prometheus answers it (prometheus.io/docs/prometheus/latest/querying/
# api/#alerts): one alert firing, one pending (its rule's `for:` not over yet).
PROMETHEUS_ALERTS = {
    "status": "success",
    "data": {
        "alerts": [
            {
                "labels": {
                    "alertname": "FlightDelayDriftAlert",
                    "model": NAME,
                    "severity": "warning",
                },
                "annotations": {
                    "summary": "Model flight-delay: the monitoring cycle found input drift",
                    "description": "The share of drifted columns passed the configured threshold.",
                },
                "state": "firing",
                "activeAt": "2026-12-07T21:58:40.123456789Z",
                "value": "1e+00",
            },
            {
                "labels": {"alertname": "FlightDelayAPIDown", "instance": "api:8000"},
                "annotations": {"summary": "Flight-delay API api:8000 is down"},
                "state": "pending",
                "activeAt": "2026-12-07T22:01:00Z",
                "value": "0e+00",
            },
        ]
    },
}


def health(monkeypatch, reports: Path, api: str | None = None, prometheus: str | None = None):
    """The page, with the API and Prometheus at these URLs (a closed port when None)."""
    monkeypatch.setenv("FD_API_URL", api or f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("FD_PROMETHEUS_URL", prometheus or f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("FD_REPORTS_DIR", str(reports))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    at.sidebar.radio(key="page").set_value("Model health").run()
    assert not at.exception, at.exception
    return at


def write_loop(folder: Path, ece: bool = True) -> None:
    """reports/loop/decisions.json as src/simulate.py writes it (two months)."""
    months = []
    for month, version, auc, frozen in ((8, "1", 0.7551, 0.7551), (9, "2", 0.7409, 0.7373)):
        row = {"month": month, "serving_version": version, "rows": 28000, "loop_auc": auc}
        row |= {"frozen_auc": frozen, "live_auc": auc, "drift_share": 0.5, "alerts": ["drift"]}
        row |= {"decision": "promote", "champion_after": str(int(version) + 1)}
        if ece:
            row |= {"loop_ece": 0.0263 + month / 1000, "frozen_ece": 0.0301 + month / 1000}
        months.append(row)
    (folder / "loop").mkdir(parents=True, exist_ok=True)
    pooled = {"loop": 0.7588, "frozen": 0.7518}
    doc = {"months": months, "pooled_oct_dec": pooled}
    (folder / "loop" / "decisions.json").write_text(json.dumps(doc))


def write_drift(folder: Path) -> None:
    """reports/drift/history.csv (two checks of September, one of March) and the reports."""
    (folder / "drift" / "2013-09").mkdir(parents=True)
    (folder / "drift" / "history.csv").write_text(
        "created_at,batch,model,rows,drift_share,drift_detected,alert\n"
        "2026-12-07T16:08:41+00:00,2013-09,flight-delay v1,27122,0.5,True,True\n"
        "2026-12-07T16:09:12+00:00,2013-03,flight-delay v1,28834,0.0,False,False\n"
        "2026-12-07T20:08:21+00:00,2013-09,flight-delay v3,27122,0.5,True,True\n"
    )
    (folder / "drift" / "2013-09" / "report.html").write_text(REPORT_HTML)


def write_card(folder: Path) -> None:
    """reports/model_card/<name>.md and its JSON tables, as src/registry/export.py writes
    them (the reliability bins by src.tracking.runs.reliability itself)."""
    card = folder / "model_card"
    card.mkdir(parents=True)
    (card / f"{NAME}.md").write_text("# Model card\n\nThe card's text.\n")
    rng = np.random.default_rng(7)
    p = rng.uniform(0.02, 0.6, 2000)
    y = (rng.uniform(size=2000) < p).astype(float)
    (card / f"{NAME}.reliability.json").write_text(json.dumps(reliability(y, p)))
    base = {"roc_auc_low": 0.7485, "roc_auc_high": 0.7549, "log_loss": 0.4155}
    slices = [
        {"dimension": "overall", "slice": "all", "members": "", "rows": 138761, "base_rate": 0.1927,
         "mean_prediction": 0.1824, "roc_auc": 0.7518, **base},
        {"dimension": "hour_band", "slice": "00-09", "members": "", "rows": 40850,
         "base_rate": 0.0901, "mean_prediction": 0.0772, "roc_auc": 0.6530, **base},
        {"dimension": "carrier", "slice": "other", "members": "AS, F9", "rows": 990,
         "base_rate": 0.0, "mean_prediction": 0.1885, "roc_auc": None, "roc_auc_low": None,
         "roc_auc_high": None, "log_loss": 0.3891},
    ]  # fmt: skip
    doc = {"min_rows": 1000, "bootstrap": 200, "interval": 0.95, "seed": 42, "slices": slices}
    (card / f"{NAME}.slices.json").write_text(json.dumps(doc))


def infos(at: AppTest) -> list[str]:
    return [i.value for i in at.info]


# ------------------------------------------------------------------ reports, no API (fast)
def test_nothing_yet_each_missing_input_names_its_command(monkeypatch, tmp_path):
    at = health(monkeypatch, tmp_path)
    [error] = at.error
    assert error.value.startswith("The API at http://127.0.0.1:")  # and nothing else fails
    said = infos(at)
    assert len(said) == 3 and all(i.startswith("Not yet") for i in said)
    assert "make loop" in said[0] and "make drift" in said[1] and "make smoke" in said[2]
    [warning] = at.warning
    assert warning.value.startswith("Prometheus is not reachable at http://127.0.0.1:")
    assert "docker compose --profile monitoring up" in warning.value
    assert "Traceback" not in warning.value


def test_every_report_is_shown_with_the_alerts_firing(monkeypatch, tmp_path):
    write_loop(tmp_path)
    write_drift(tmp_path)
    write_card(tmp_path)
    with canned([(200, PROMETHEUS_ALERTS)]) as (prometheus, seen):
        at = health(monkeypatch, tmp_path, prometheus=prometheus)
    assert seen[0][0] == "/api/v1/alerts"
    assert infos(at) == [] and not at.warning  # every input found
    loop, drift, firing, points, slices = (d.value for d in at.dataframe)
    assert list(loop["month"]) == ["2013-08", "2013-09"]
    assert list(loop["AUC loop"]) == [0.7551, 0.7409] and list(loop["gap"]) == [0.0, 0.0036]
    assert list(loop["ECE loop"]) == [0.0343, 0.0353]
    assert list(loop["ECE frozen"]) == [0.0381, 0.0391]
    assert list(loop["decision"]) == ["promote → v2", "promote → v3"]
    assert len(at.get("vega_lite_chart")) == 3  # AUC, ECE, the reliability diagram
    # Each check with the report it wrote: September's first check was written over by its
    # second (its row shows –), and March's was not kept.
    report = str(tmp_path / "drift" / "2013-09" / "report.html")
    assert list(drift["report"]) == ["–", "–", report]
    # Prometheus's firing alert, in words; the pending one counted.
    assert firing.to_dict("records") == [
        {
            "alert": "FlightDelayDriftAlert",
            "severity": "warning",
            "since": "2026-12-07 21:58 UTC",
            "summary": "Model flight-delay: the monitoring cycle found input drift",
            "labels": "model=flight-delay",
        }
    ]
    assert any(c.value.startswith("1 more pending") for c in at.caption)
    # The reliability diagram's points are the bins holding flights, the ECE the card's.
    bins = json.loads((tmp_path / "model_card" / f"{NAME}.reliability.json").read_text())
    filled = [b for b in bins["bins"] if b["rows"]]
    assert list(points["flights"]) == [b["rows"] for b in filled] and len(filled) >= 5
    assert list(points["mean prediction"]) == [round(b["mean_prediction"], 4) for b in filled]
    assert any(
        c.value.startswith(f"Reliability diagram, ECE {bins['ece']:.4f}") for c in at.caption
    )
    assert list(slices["slice"]) == ["all", "00-09", "other (AS, F9)"]
    assert list(slices["dimension"]) == ["overall", "hour band", "carrier"]
    assert list(slices["95% interval"]) == ["0.7485–0.7549", "0.7485–0.7549", "–"]
    assert any("loop 0.7588, frozen 0.7518 (+0.0070)" in m.value for m in at.markdown)
    [card] = at.expander
    assert card.label == str(tmp_path / "model_card" / f"{NAME}.md")
    assert "The card's text." in "\n".join(m.value for m in card.markdown)


def test_an_evidently_report_can_be_downloaded_and_shown(monkeypatch, tmp_path):
    write_drift(tmp_path)
    at = health(monkeypatch, tmp_path)
    assert at.selectbox(key="drift_batch").options == ["2013-09"]
    [button] = at.get("download_button")
    assert button.proto.label == "Download the 2013-09 report (HTML)"
    assert not at.get("iframe")
    at.toggle(key="drift_show").set_value(True).run()
    assert not at.exception
    [shown] = at.get("iframe")
    assert REPORT_HTML in shown.proto.srcdoc


def test_a_loop_without_ece_and_prometheus_without_alerts_say_so(monkeypatch, tmp_path):
    write_loop(tmp_path, ece=False)
    quiet = {"status": "success", "data": {"alerts": []}}
    with canned([(200, quiet)]) as (prometheus, _):
        at = health(monkeypatch, tmp_path, prometheus=prometheus)
    assert infos(at)[0].startswith(f"No ECE by month in {tmp_path / 'loop' / 'decisions.json'}")
    assert infos(at)[0].endswith("Run `make loop` again.")
    assert [s.value for s in at.success] == [f"No alert is firing at {prometheus}."]
    with canned([(503, {"status": "error", "error": "TSDB not ready"})]) as (prometheus, _):
        at = health(monkeypatch, tmp_path, prometheus=prometheus)
    [warning] = at.warning
    assert warning.value == f"Prometheus at {prometheus} did not list its alerts: TSDB not ready"


def test_the_challenger_is_shown_beside_the_champion(monkeypatch, tmp_path):
    """GET /model's answer as the API's own schema builds it, with a challenger."""

    def lineage(version: str, alias: str, run_id: str) -> ModelLineage:
        return ModelLineage(
            name=NAME, version=version, alias=alias, source="registry", run_id=run_id,
            data_manifest_sha256="1b8ca5de", git_commit="ad44877", metrics={"test_roc_auc": 0.75},
            loaded_at="2026-12-07T20:07:03+00:00",
        )  # fmt: skip

    registry = {"reachable": True, "checked_at": None, "error": None, "reloads": []}
    champion = lineage("3", "champion", "de898ba6")
    answer = ModelInfo(
        **champion.model_dump(), shadow_version="4", registry=registry, metadata={},
        challenger=lineage("4", "challenger", "0f1e2d3c"),
    )  # fmt: skip
    with canned([(200, answer.model_dump(mode="json"))]) as (api, seen):
        at = health(monkeypatch, tmp_path, api=api)
    assert seen[0][0] == "/model"
    assert [m.value for m in at.metric] == [f"{NAME} v3", f"{NAME} v4"]
    champion_lineage, _, challenger_lineage = (t.value.to_dict("records") for t in at.table)
    assert {r[""]: r["value"] for r in champion_lineage}["run id"] == "de898ba6"
    assert {r[""]: r["value"] for r in challenger_lineage}["run id"] == "0f1e2d3c"
    assert {r[""]: r["value"] for r in challenger_lineage}["alias"] == "challenger"
    # The served champion's tables are looked for by its name.
    assert any(
        s.value == f"Calibration and slices of {NAME}, on its test months" for s in at.subheader
    )


# ------------------------------------------------------------------ the real API (slow)
@pytest.mark.slow
def test_the_real_api_without_a_challenger_says_so(monkeypatch, api_url, tmp_path):
    at = health(monkeypatch, tmp_path, api=api_url)
    status, model = http_json(f"{api_url}/model")
    assert status == 200 and model["challenger"] is None and not at.error
    assert at.metric[0].value == f"{model['name']} v{model['version']}"
    said = infos(at)
    assert "No challenger: the registry's @challenger is not set." in said[0]
    # No reports here: the champion's reliability bins and slices are named, by its name.
    bins = tmp_path / "model_card" / f"{model['name']}.reliability.json"
    assert f"Not yet: no {bins}. Run `make smoke` or `make pipeline`" in "\n".join(said)
