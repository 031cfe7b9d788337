"""The champion/challenger gate on realistic synthetic scores: two logistic models fitted on
one half of a simulated window and scored on the other half."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from src.common.config import load_config
from src.common.paths import SMOKE_CONFIG
from src.model.evaluate import expected_calibration_error
from src.model.gate import (
    bootstrap_auc_gains,
    bootstrap_indices,
    check_inputs,
    decide,
    gate_decision,
    paired_bootstrap_auc_gain,
)

ROWS = 8000  # scored rows; as many again for fitting
BASE_LOGIT = -1.4  # about a 25% positive rate, like the delay rate


def simulate(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """y ~ Bernoulli(sigmoid(x1 + 0.5 x2 - 1.4)); x3 is noise. Returns, for the scored half,
    labels and the probabilities of models fitted on [x1], [x1, x2] and [x1, x3]."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2 * rows, 3))
    logit = x[:, 0] + 0.5 * x[:, 1] + BASE_LOGIT
    y = (rng.random(2 * rows) < 1 / (1 + np.exp(-logit))).astype(int)
    fit, score = slice(0, rows), slice(rows, 2 * rows)
    out = {"y": y[score]}
    for name, cols in (("x1", [0]), ("x1_x2", [0, 1]), ("x1_x3", [0, 2])):
        model = LogisticRegression().fit(x[fit][:, cols], y[fit])
        out[name] = model.predict_proba(x[score][:, cols])[:, 1]
    return out


@pytest.fixture(scope="module")
def window() -> dict[str, np.ndarray]:
    return simulate(ROWS)


def sharpen(p: np.ndarray, factor: float) -> np.ndarray:
    """Same ranking, overconfident probabilities: the logit scaled by `factor`."""
    logit = np.log(p / (1 - p))
    return 1 / (1 + np.exp(-factor * logit))


def test_challenger_with_real_extra_signal_is_promoted(window):
    result = decide(window["y"], window["x1"], window["x1_x2"], n_boot=300)
    assert result.promote
    assert 0 < result.ci_low < result.auc_gain < result.ci_high
    assert result.auc_gain == pytest.approx(result.challenger_auc - result.champion_auc)
    assert result.challenger_log_loss < result.champion_log_loss
    assert result.rows == ROWS
    assert result.reason.startswith(f"AUC gain +{result.auc_gain:.4f} (95% CI +")
    assert "; low > +0.0000) and log loss" in result.reason


def test_weaker_challenger_is_not_promoted(window):
    result = decide(window["y"], window["x1_x2"], window["x1"], n_boot=300)
    assert not result.promote
    assert result.ci_low < result.auc_gain < result.ci_high < 0
    assert "; low <= +0.0000) and log loss" in result.reason and " > " in result.reason


def test_noise_feature_gain_is_not_significant(window):
    """A challenger that only adds a noise feature: the CI straddles 0, keep the champion."""
    result = decide(window["y"], window["x1"], window["x1_x3"], n_boot=300)
    assert not result.promote
    assert result.ci_low < 0 < result.ci_high
    assert "low <= +0.0000" in result.reason


def test_identical_predictions_tie_and_are_not_promoted(window):
    p = window["x1_x2"]
    result = decide(window["y"], p, p.copy(), n_boot=200)
    assert (result.auc_gain, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert result.champion_log_loss == result.challenger_log_loss
    assert not result.promote
    assert "low <= +0.0000" in result.reason


def test_a_non_inferiority_margin_promotes_a_tie_but_not_a_worse_challenger(window):
    """min_auc_gain < 0: promote unless the evidence shows a loss larger than the margin."""
    p = window["x1_x2"]
    tie = decide(window["y"], p, p.copy(), n_boot=200, min_auc_gain=-0.002)
    assert tie.promote and "low > -0.0020" in tie.reason
    worse = decide(window["y"], window["x1_x2"], window["x1"], n_boot=300, min_auc_gain=-0.002)
    assert worse.ci_low < -0.002 and not worse.promote


def test_better_ranking_with_bad_calibration_is_vetoed_by_log_loss(window):
    overconfident = sharpen(window["x1_x2"], 3.0)
    result = decide(window["y"], window["x1"], overconfident, n_boot=300)
    assert result.ci_low > 0  # the ranking is better: same order as the good challenger
    assert result.challenger_log_loss > result.champion_log_loss
    assert not result.promote
    assert f"log loss {result.challenger_log_loss:.4f} > " in result.reason


def test_log_loss_allowance_admits_a_slightly_worse_calibration(window):
    slightly = sharpen(window["x1_x2"], 1.6)
    strict = decide(window["y"], window["x1"], slightly, n_boot=200)
    gap = strict.challenger_log_loss - strict.champion_log_loss
    assert not strict.promote and 0 < gap < 0.05
    lenient = decide(window["y"], window["x1"], slightly, n_boot=200, max_log_loss_increase=0.05)
    assert lenient.promote
    assert "+ 0.0500 allowed" in lenient.reason


def test_challenger_setting_off_the_calibration_alarm_is_not_promoted(window):
    """Better ranking, log loss allowed by a lenient margin, but an ECE above the monitor's
    limit where the champion's is below it: promoting it would raise the alarm."""
    sharp = sharpen(window["x1_x2"], 1.6)
    args = (window["y"], window["x1"], sharp)
    without = decide(*args, n_boot=200, max_log_loss_increase=0.05)
    assert without.promote and "ECE" not in without.reason  # no limit given: no ECE rule
    result = decide(*args, n_boot=200, max_log_loss_increase=0.05, max_calibration_error=0.05)
    assert result.champion_ece == expected_calibration_error(window["y"], window["x1"])
    assert result.challenger_ece == expected_calibration_error(window["y"], sharp)
    assert result.champion_ece < 0.05 < result.challenger_ece
    assert not result.promote
    assert result.reason.endswith(
        f"allowed) and ECE {result.challenger_ece:.4f} > 0.05 where the champion's is "
        f"{result.champion_ece:.4f}"
    )


def test_ece_above_the_limit_passes_when_the_champion_is_above_it_too(window):
    """Both above the limit: the alarm rings either way, so the ECE does not decide, whether
    the challenger's is lower or (by a hair or more) higher than the champion's."""
    champion, challenger = sharpen(window["x1"], 2.5), sharpen(window["x1_x2"], 1.6)
    for p_champion, p_challenger in ((champion, challenger), (challenger, champion)):
        result = decide(
            window["y"],
            p_champion,
            p_challenger,
            n_boot=200,
            max_calibration_error=0.02,
            max_log_loss_increase=1.0,
            min_auc_gain=-0.05,
        )
        assert min(result.challenger_ece, result.champion_ece) > 0.02
        assert result.promote, result.reason
        assert f"ECE {result.challenger_ece:.4f} > 0.02, as the champion's" in result.reason


def test_gate_decision_applies_the_monitors_limit(window):
    cfg = load_config(SMOKE_CONFIG)
    sharp = sharpen(window["x1_x2"], 1.6)
    gate = cfg.gate.model_copy(update={"bootstrap": 100, "max_log_loss_increase": 0.05})
    result = gate_decision(window["y"], window["x1"], sharp, cfg.model_copy(update={"gate": gate}))
    assert f"> {cfg.monitor.max_calibration_error} where the champion's is" in result.reason
    assert not result.promote


def test_same_seed_same_interval_other_seed_other_interval(window):
    args = (window["y"], window["x1"], window["x1_x2"])
    first = paired_bootstrap_auc_gain(*args, n_boot=200, seed=7)
    assert paired_bootstrap_auc_gain(*args, n_boot=200, seed=7) == first
    other = paired_bootstrap_auc_gain(*args, n_boot=200, seed=8)
    assert other[0] == first[0] and other[1:] != first[1:]


def test_fast_bootstrap_auc_equals_sklearn_on_the_same_resamples(window):
    """Scores rounded to 2 decimals so that many rows tie within and across classes."""
    y, champion, challenger = check_inputs(
        window["y"], np.round(window["x1"], 2), np.round(window["x1_x2"], 2)
    )
    n_boot, seed = 40, 3
    indices = np.concatenate(list(bootstrap_indices(y, n_boot, seed)))
    assert indices.shape == (n_boot, ROWS)
    slow = np.array(
        [roc_auc_score(y[i], challenger[i]) - roc_auc_score(y[i], champion[i]) for i in indices]
    )
    fast = bootstrap_auc_gains(y, champion, challenger, n_boot, seed)
    assert np.abs(fast - slow).max() <= 1e-12
    assert np.std(fast) > 0.001  # the resamples really differ
    _, low, high = paired_bootstrap_auc_gain(
        y, champion, challenger, n_boot=n_boot, seed=seed, alpha=0.1
    )
    assert (low, high) == pytest.approx(tuple(np.quantile(slow, [0.05, 0.95])), abs=1e-12)


def test_single_class_resamples_are_redrawn():
    """Two positives in 12 rows: about 11% of resamples hold no positive and are replaced."""
    y = np.array([1, 1] + [0] * 10, dtype=float)
    indices = np.concatenate(list(bootstrap_indices(y, 300, seed=0)))
    assert indices.shape == (300, 12)
    assert (y[indices].sum(axis=1) > 0).all()
    p = np.linspace(0.1, 0.9, 12)
    gain, low, high = paired_bootstrap_auc_gain(y, p, p[::-1], n_boot=300, seed=0)
    assert np.isfinite([gain, low, high]).all()


def test_result_is_json_serialisable(window):
    result = decide(window["y"], window["x1"], window["x1_x2"], n_boot=50)
    data = json.loads(json.dumps(result.as_dict()))
    assert data["promote"] is True and data["rows"] == ROWS
    assert data["ci_low"] == result.ci_low and set(data) >= {"reason", "auc_gain", "ci_high"}
    assert data["challenger_ece"] == result.challenger_ece


@pytest.mark.parametrize(
    ("y", "champion", "challenger", "message"),
    [
        ([0, 1, 1], [0.1, 0.2, 0.3], [0.1, 0.2], "challenger probabilities have length 2"),
        ([0, 1, 1], [0.1, 0.2], [0.1, 0.2, 0.3], "champion probabilities have length 2"),
        ([1, 1, 1], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3], "one class only"),
        ([0, 1, 2], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3], "labels must be 0 or 1"),
        ([0, 1, 1], [0.1, 1.2, 0.3], [0.1, 0.2, 0.3], r"champion probabilities .* \[0, 1\]"),
        ([0, 1, 1], [0.1, 0.2, 0.3], [0.1, np.nan, 0.3], "challenger probabilities must be"),
        ([0, 1, 1], [0.1, 0.2, 0.3], [-0.1, 0.2, 0.3], "challenger probabilities must be"),
        ([], [], [], "non-empty"),
    ],
)
def test_invalid_inputs_are_rejected_with_a_clear_message(y, champion, challenger, message):
    with pytest.raises(ValueError, match=message):
        decide(np.array(y), np.array(champion), np.array(challenger), n_boot=10)


def test_invalid_settings_are_rejected(window):
    args = (window["y"], window["x1"], window["x1_x2"])
    with pytest.raises(ValueError, match="n_boot must be >= 1"):
        paired_bootstrap_auc_gain(*args, n_boot=0)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        paired_bootstrap_auc_gain(*args, alpha=1.5)
    with pytest.raises(ValueError, match="max_log_loss_increase must be >= 0"):
        decide(*args, max_log_loss_increase=-0.01)


def test_a_month_of_flights_and_1000_resamples_take_seconds():
    """27k rows (one month of test flights) x 1000 paired resamples: < 10 s on 2 cores
    (bound at 30 s so a busy machine does not fail the test)."""
    data = simulate(27_000, seed=1)
    start = time.perf_counter()
    gain, low, high = paired_bootstrap_auc_gain(data["y"], data["x1"], data["x1_x2"], n_boot=1000)
    elapsed = time.perf_counter() - start
    assert low < gain < high
    assert elapsed < 30, f"bootstrap took {elapsed:.1f}s"
