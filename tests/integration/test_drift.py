"""Drift stage on the smoke pipeline: real Evidently reports, exit codes for cron."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from src import drift
from src.common.schema import PREDICTION, REQUEST_FIELDS
from src.data.processed import load_processed
from src.model.features import request_columns
from src.serving.loader import load_export
from src.serving.prediction_log import PredictionLogger, read_log
from tests.integration.support import ARGS, CFG, records

pytestmark = pytest.mark.slow


def test_training_month_does_not_drift(smoke_pipeline, capsys):
    # The smoke reference is a sample of January, so January's data must not drift. Its
    # quality is in-sample (the model was fit on it), and that overfit may show as a
    # calibration error (ECE) above the limit: the only alert allowed here.
    code = drift.main([*ARGS, "--month", "1"])
    summary = json.loads(smoke_pipeline.drift_summary("2013-01").read_text())
    alerts = summary["performance_alerts"]
    assert all(a.startswith("calibration: ECE") for a in alerts), alerts
    assert code == (drift.EXIT_ALERT if alerts else drift.EXIT_OK)
    assert summary["drift_detected"] is False and summary["drift_share"] < 0.5
    assert summary["drifted_columns"] == []
    assert summary["quality"]["roc_auc"] > 0.6
    assert summary["cancellation_rate"]["1"] == pytest.approx(0.0193, abs=1e-3)
    assert smoke_pipeline.drift_report("2013-01").stat().st_size > 10_000
    assert "no drift" in capsys.readouterr().out


def test_fleet_shift_in_march_drifts(smoke_pipeline):
    # Measured on the smoke slice: against January, March's fleet columns (plane age, engine
    # count, manufacturer) move past the 0.03 threshold; the airport/carrier mix and seats
    # do not. 3 of 6 columns is exactly the 0.5 share that alerts.
    assert drift.main([*ARGS, "--month", "3"]) == drift.EXIT_ALERT
    summary = json.loads(smoke_pipeline.drift_summary("2013-03").read_text())
    assert summary["drifted_columns"] == ["engines", "manufacturer", "plane_age"]
    assert summary["drift_share"] == pytest.approx(3 / len(CFG.drift.columns)) == 0.5
    assert summary["drift_detected"] is True and summary["alert"] is True
    scores = summary["column_scores"]
    assert set(scores) == set(CFG.drift.columns)
    assert all(
        (scores[c] >= CFG.drift.threshold) == (c in summary["drifted_columns"]) for c in scores
    )
    history = pd.read_csv(smoke_pipeline.drift_history)
    assert list(history["batch"])[-1] == "2013-03"
    assert history["drift_share"].iloc[-1] == pytest.approx(0.5)


def test_prediction_log_as_batch(smoke_pipeline, test_split, tmp_path):
    """The API's prediction log (the real champion's probabilities, written by the real
    logger) is a batch the drift stage checks without labels."""
    champion = load_export(CFG, smoke_pipeline)
    flights = records(test_split.head(3000))
    logger = PredictionLogger(tmp_path)
    logged = []
    for start in range(0, 3000, 1000):  # three logged batch requests
        cols = {c: [r[c] for r in flights[start : start + 1000]] for c in REQUEST_FIELDS}
        proba = champion.model.predict_proba(cols)
        logger.log(f"request-{start}", champion.name, champion.version, cols, proba)
        logged.append(proba)
    logger.close()
    expected = np.concatenate(logged)
    # A real model's scores, not a constant (the smoke champion's isotonic calibrator maps
    # them onto its steps, so they take a few dozen values).
    assert len(np.unique(expected)) > 10 and expected.std() > 0.05

    batch, torn = read_log(tmp_path)
    assert torn == 0 and len(batch) == 3000 and set(batch["model_version"]) == {champion.version}
    np.testing.assert_array_equal(batch[PREDICTION].to_numpy(), expected)

    code = drift.main([*ARGS, "--predictions", str(tmp_path)])
    assert code in (drift.EXIT_OK, drift.EXIT_ALERT)
    summary = json.loads(smoke_pipeline.drift_summary("predictions").read_text())
    assert summary["rows"] == 3000 and summary["quality"] is None
    assert summary["batch"] == "predictions"
    assert isinstance(summary["prediction_drift"], float)
    assert math.isfinite(summary["prediction_drift"]) and summary["prediction_drift"] >= 0
    # It is the logged probabilities' distance from the champion's scores on the reference
    # (Wasserstein, normed by the reference's spread, as Evidently computes it).
    reference = champion.model.predict_proba(
        request_columns(load_processed(smoke_pipeline, "reference"))
    )
    distance = wasserstein_distance(reference, expected) / max(np.std(reference), 0.001)
    assert summary["prediction_drift"] == pytest.approx(distance, rel=1e-6)
    assert code == (drift.EXIT_ALERT if summary["alert"] else drift.EXIT_OK)


def test_errors_exit_2(smoke_pipeline, tmp_path):
    assert drift.main([*ARGS, "--month", "11"]) == drift.EXIT_ERROR  # not in the smoke slice
    assert drift.main([*ARGS, "--predictions", str(tmp_path)]) == drift.EXIT_ERROR  # empty log
