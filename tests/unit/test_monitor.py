"""Performance alarms of the drift monitor (configs: monitor:)."""

from __future__ import annotations

import numpy as np

from src.common.config import Monitor
from src.model.evaluate import binary_metrics
from src.monitoring.drift import baseline_figures, performance_alerts

VALIDATION = baseline_figures({"validation_roc_auc": 0.75, "validation_log_loss": 0.52})
RULE = Monitor(max_auc_drop=0.03, max_log_loss_rise=0.05, max_calibration_error=0.05)


def batch_quality(shift: float = 0.0, seed: int = 0) -> dict:
    """Quality of a realistic batch: ~25% delayed, informative but noisy scores."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-(x * 1.3 - 1.3)))).astype(int)
    p = 1 / (1 + np.exp(-(x * 1.3 - 1.3 + shift)))
    return binary_metrics(y, p)


def test_healthy_batch_raises_nothing():
    q = batch_quality()
    assert q["roc_auc"] > 0.72
    assert performance_alerts(q, VALIDATION, RULE) == []


def test_miscalibrated_batch_alerts_on_calibration_and_log_loss():
    q = batch_quality(shift=1.5)
    alerts = performance_alerts(q, VALIDATION, RULE)
    assert f"calibration: ECE {q['ece']:.4f} > 0.05 (mean prediction " in alerts[-1]
    assert any(a.startswith("log loss") for a in alerts)


def test_calibration_alarm_reads_the_ece_not_the_overall_gap():
    """Too confident both ways, symmetrically: the mean prediction matches the delay rate,
    the ECE does not (an alarm on the overall gap would stay silent)."""
    rng = np.random.default_rng(3)
    truth = rng.beta(2, 2, size=20000)  # symmetric about 0.5
    y = (rng.random(20000) < truth).astype(int)
    sharp = 1 / (1 + np.exp(-3 * np.log(truth / (1 - truth))))  # logit x 3: still symmetric
    q = binary_metrics(y, sharp)
    assert abs(q["mean_prediction"] - q["base_rate"]) < 0.05 < q["ece"]
    assert [a for a in performance_alerts(q, VALIDATION, RULE) if "ECE" in a]
    calibrated = performance_alerts(binary_metrics(y, truth), VALIDATION, RULE)
    assert not [a for a in calibrated if "ECE" in a]


def test_auc_drop_beyond_the_allowance_alerts():
    q = {**batch_quality(), "roc_auc": 0.70}
    alerts = performance_alerts(q, VALIDATION, RULE)
    assert alerts == ["ROC AUC 0.7000 < 0.7200 (baseline - 0.03)"]


def test_promoted_challenger_is_judged_against_its_gate_window():
    baseline = baseline_figures({"gate_window_roc_auc": 0.71, "gate_window_log_loss": 0.40})
    assert baseline == {"roc_auc": 0.71, "log_loss": 0.40}
    assert baseline_figures({}) == {"roc_auc": None, "log_loss": None}
    q = {**batch_quality(), "roc_auc": 0.67}
    assert performance_alerts(q, baseline, RULE)[0].startswith("ROC AUC 0.6700 < 0.6800")


def test_unlabelled_batch_has_no_performance_alarm():
    assert performance_alerts(None, VALIDATION, RULE) == []
