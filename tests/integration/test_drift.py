"""Drift stage on the smoke pipeline: real Evidently reports, exit codes for cron."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest

from app.prediction_log import PredictionLogger
from src import drift
from src.common.config import load_config
from src.common.schema import REQUEST_FIELDS
from tests.conftest import SMOKE_CONFIG

pytestmark = pytest.mark.slow
ARGS = ["--config", str(SMOKE_CONFIG)]


def test_training_month_does_not_drift(smoke_pipeline, capsys):
    # The smoke reference is a sample of January, so January itself must not alert.
    assert drift.main([*ARGS, "--month", "1"]) == drift.EXIT_OK
    out = smoke_pipeline.drift_reports / "2013-01"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["drift_detected"] is False and summary["drift_share"] < 0.5
    assert summary["quality"]["roc_auc"] > 0.6
    assert summary["cancellation_rate"]["1"] == pytest.approx(0.0193, abs=1e-3)
    assert (out / "report.html").stat().st_size > 10_000
    assert "no drift" in capsys.readouterr().out


def test_fleet_shift_in_march_drifts(smoke_pipeline):
    # Measured: against January, March's fleet columns move past the 0.03 threshold.
    assert drift.main([*ARGS, "--month", "3"]) == drift.EXIT_ALERT
    summary = json.loads((smoke_pipeline.drift_reports / "2013-03" / "summary.json").read_text())
    assert summary["drift_share"] >= 0.5
    assert set(summary["drifted_columns"]) <= set(load_config(SMOKE_CONFIG).drift.columns)
    history = pd.read_csv(smoke_pipeline.drift_reports / "history.csv")
    assert list(history["batch"])[-1] == "2013-03"


def test_prediction_log_as_batch(smoke_pipeline, test_split, tmp_path):
    flights = test_split[list(REQUEST_FIELDS)].head(3000)
    flights = flights.astype(object).where(flights.notna(), None)
    logger = PredictionLogger(tmp_path)
    version = SimpleNamespace(name="flight-delay-smoke", version="1")
    for start in range(0, 3000, 1000):  # three logged batch requests
        cols = {c: flights[c].iloc[start : start + 1000].tolist() for c in REQUEST_FIELDS}
        logger.log(f"request-{start}", version, cols, [0.2] * 1000)
    logger.close()
    code = drift.main([*ARGS, "--predictions", str(tmp_path)])
    assert code in (drift.EXIT_OK, drift.EXIT_ALERT)
    summary = json.loads(
        (smoke_pipeline.drift_reports / "predictions" / "summary.json").read_text()
    )
    assert summary["rows"] == 3000 and summary["quality"] is None


def test_errors_exit_2(smoke_pipeline, tmp_path):
    assert drift.main([*ARGS, "--month", "11"]) == drift.EXIT_ERROR  # not in the smoke slice
    assert drift.main([*ARGS, "--predictions", str(tmp_path)]) == drift.EXIT_ERROR  # empty log
