"""Calibration (issue 15): the ECE (src/model/evaluate.py), the reliability diagram, the
calibrators the model applies (src/model/model.py) and their fitting and choice
(src/model/calibration.py).

Where a test needs labels whose calibration it knows, it draws them from a known
probability: y ~ Bernoulli(truth), and the scores are the truth distorted by a known map.
"""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import log_loss

from src.common.schema import PREDICTION, TARGET
from src.model.calibration import CALIBRATORS, calibrate, fit_isotonic, fit_platt, time_halves
from src.model.evaluate import (
    binary_metrics,
    calibration_figure,
    expected_calibration_error,
    reliability_bins,
)
from src.model.features import request_columns, request_records
from src.model.fit import fit_model
from src.model.model import (
    IsotonicCalibrator,
    LightGBMBooster,
    PlattCalibrator,
    calibrator_from_dict,
    from_bytes,
    logit,
    to_bytes,
)
from src.serving.lgb_capi import CApiBooster

TRAIN_ROWS = 2000  # the model is fitted on the slice's first flights (smoke parameters)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def draw(truth: np.ndarray, seed: int = 0) -> np.ndarray:
    """Labels whose delay probability is `truth`."""
    return (np.random.default_rng(seed).random(len(truth)) < truth).astype(int)


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    return np.random.default_rng(1).beta(2, 5, size=20_000)  # about 29% delayed, like July


# ------------------------------------------------------------------ ECE
def test_ece_of_a_hand_computed_example():
    p = np.array([0.12, 0.18, 0.32, 0.34, 0.36, 0.95])
    y = np.array([0, 1, 0, 0, 1, 1])
    # bin (0.1, 0.2]: 2 rows, |0.15 - 1/2|; bin (0.3, 0.4]: 3 rows, |0.34 - 1/3|;
    # bin (0.9, 1]: 1 row, |0.95 - 1|
    expected = (2 * 0.35 + 3 * abs(0.34 - 1 / 3) + 1 * 0.05) / 6
    assert expected_calibration_error(y, p) == pytest.approx(expected, abs=1e-12)
    assert expected_calibration_error(y, p, bins=1) == pytest.approx(abs(p.mean() - y.mean()))


def test_ece_equals_the_row_weighted_gap_of_sklearns_calibration_curve(truth):
    y, p = draw(truth), truth**1.5
    rate, mean_p = calibration_curve(y, p, n_bins=10, strategy="uniform")
    rows, _ = np.histogram(p, bins=np.linspace(0, 1, 11))  # no score sits on an edge
    weights = rows[rows > 0] / len(p)
    assert expected_calibration_error(y, p) == pytest.approx(
        np.sum(weights * np.abs(mean_p - rate)), abs=1e-12
    )
    filled, ours_p, ours_rate = (a[rows > 0] for a in reliability_bins(y, p))
    assert np.allclose(ours_p, mean_p) and np.allclose(ours_rate, rate)
    assert filled.sum() == len(p)


def test_ece_follows_the_scores(truth):
    y = draw(truth)
    calibrated, distorted = expected_calibration_error(y, truth), expected_calibration_error(
        y, truth**2
    )
    assert calibrated < 0.01 < 0.05 < distorted
    assert binary_metrics(y, truth**2)["ece"] == distorted  # what every metrics dict logs


def test_reliability_diagram_is_drawn_from_the_scores(truth):
    y = draw(truth)
    fig = calibration_figure(y, {"raw": truth**2, "calibrated": truth})
    ax = fig.axes[0]
    for line, p in zip(ax.lines, (truth**2, truth), strict=False):
        rows, mean_p, rate = reliability_bins(y, p)
        assert np.allclose(line.get_xydata(), np.c_[mean_p, rate][rows > 0])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [
        f"raw (ECE {expected_calibration_error(y, truth**2):.4f})",
        f"calibrated (ECE {expected_calibration_error(y, truth):.4f})",
    ]
    histogram = fig.axes[1].patches[0].get_path().vertices[:, 1]
    assert histogram.max() == np.histogram(truth**2, bins=np.linspace(0, 1, 11))[0].max()


# ------------------------------------------------------------------ calibrators
def test_platt_recovers_a_logit_distortion(truth):
    y = draw(truth)
    distorted = sigmoid(2.0 * logit(truth) + 0.7)  # over-confident and too high
    platt = fit_platt(distorted, y)
    assert (platt.a, platt.b) == pytest.approx((0.5, -0.35), abs=0.05)
    repaired = platt.apply(distorted)
    assert log_loss(y, repaired) < log_loss(y, distorted) - 0.02
    assert expected_calibration_error(y, repaired) < 0.01


def test_isotonic_recovers_a_monotone_distortion(truth):
    y = draw(truth)
    isotonic = fit_isotonic(truth**2, y)
    repaired = isotonic.apply(truth**2)
    assert np.mean(np.abs(repaired - truth)) < 0.02
    assert log_loss(y, repaired) < log_loss(y, truth**2) - 0.02
    assert expected_calibration_error(y, repaired) < 0.01
    assert min(isotonic.y) > 0 and max(isotonic.y) < 1  # no probability of exactly 0 or 1


def test_calibrators_round_trip_as_plain_data():
    for calibrator in (PlattCalibrator(0.8, -0.1), IsotonicCalibrator((0.1, 0.5), (0.2, 0.6))):
        data = calibrator.to_dict()
        assert data["method"] == calibrator.method
        assert pickle.loads(pickle.dumps(data)) == data  # floats and lists only
        assert calibrator_from_dict(data) == calibrator
    assert calibrator_from_dict(None) is None
    with pytest.raises(ValueError, match="calibrator method 'beta'"):
        calibrator_from_dict({"method": "beta"})


# ------------------------------------------------------------------ the model with one
@pytest.fixture(scope="module")
def model(processed_slice, raw_slice, smoke_cfg):
    return fit_model("lightgbm", processed_slice.head(TRAIN_ROWS), raw_slice["planes"], smoke_cfg)


@pytest.fixture(scope="module")
def window(processed_slice, model):
    """The slice as a validation window, with the model's own scores beside it."""
    frame = processed_slice.reset_index(drop=True)
    return frame, model.predict_proba(request_columns(frame))


def relabelled(window, truth_earlier, truth_later, seed: int = 0):
    """The window with labels drawn from one probability on its earlier half, another on
    its later half (functions of the model's raw score)."""
    frame, p = window
    earlier, later = time_halves(frame)
    truth = np.empty(len(frame))
    truth[earlier], truth[later] = truth_earlier(p[earlier]), truth_later(p[later])
    return frame.assign(**{TARGET: draw(truth, seed)})


def test_the_halves_follow_the_date(window):
    frame, _ = window
    earlier, later = time_halves(frame)
    assert len(earlier) + len(later) == len(frame) and abs(len(earlier) - len(later)) <= 1
    when = frame["day"] * 10_000 + frame["hour"] * 100 + frame["minute"]
    assert when.iloc[earlier].max() <= when.iloc[later].min()


def test_calibrate_keeps_a_calibrator_that_helps_on_the_later_half(window, model):
    def too_low(p):  # the model's scores are too confident and too low, in both halves
        return sigmoid(0.5 * logit(p) + 0.8)

    frame = relabelled(window, too_low, too_low)
    calibrated, report = calibrate(model, frame, ["platt", "isotonic"])
    figures = report["metrics"]
    assert report["method"] in ("platt", "isotonic")
    assert calibrated.calibrator.method == report["method"]
    kept = figures[f"calibration_later_log_loss_{report['method']}"]
    assert kept == min(figures[f"calibration_later_log_loss_{m}"] for m in ("platt", "isotonic"))
    assert kept < figures["calibration_later_log_loss_raw"]
    y, raw = frame[TARGET].to_numpy(), window[1]
    p = calibrated.predict_proba(request_columns(frame))
    assert calibrated.calibrator == CALIBRATORS[report["method"]](raw, y)  # refit on every row
    assert np.array_equal(p, calibrated.calibrator.apply(raw))
    assert expected_calibration_error(y, p) < expected_calibration_error(y, raw) / 2


def test_calibrate_keeps_none_when_the_earlier_half_misleads(window, model):
    """The earlier half's labels are shifted, the later half's match the scores: a
    calibrator judged on the rows it was fitted on would look good; judged forward, not."""
    frame = relabelled(window, lambda p: sigmoid(logit(p) + 1.0), lambda p: p)
    calibrated, report = calibrate(model, frame, ["platt", "isotonic"])
    figures = report["metrics"]
    assert report["method"] is None and calibrated.calibrator is None
    for method in ("platt", "isotonic"):
        assert figures[f"calibration_later_log_loss_{method}"] > (
            figures["calibration_later_log_loss_raw"]
        )
    earlier, _ = time_halves(frame)
    y, raw = frame[TARGET].to_numpy()[earlier], window[1][earlier]
    assert log_loss(y, fit_platt(raw, y).apply(raw)) < log_loss(y, raw)  # in-sample: "helps"


def test_calibrate_with_no_methods_drops_any_calibrator(window, model):
    frame = relabelled(window, lambda p: p, lambda p: p)
    with_one = replace(model, calibrator=PlattCalibrator(1.0, 0.5))
    plain, report = calibrate(with_one, frame, [])
    assert plain.calibrator is None and report["method"] is None
    assert set(report["metrics"]) == {
        "calibration_earlier_rows",
        "calibration_later_rows",
        "calibration_later_log_loss_raw",
        "calibration_later_ece_raw",
    }
    with pytest.raises(ValueError, match=r"calibration methods \['beta'\]"):
        calibrate(model, frame, ["beta"])


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_model_file_keeps_its_calibrator_and_every_path_applies_it(
    method, window, model, processed_slice
):
    _, raw = window
    fit = {"platt": fit_platt, "isotonic": fit_isotonic}[method]  # isotonic: many steps
    calibrator = fit(raw, draw(sigmoid(0.6 * logit(raw) - 0.5)))
    calibrated = replace(model, calibrator=calibrator)
    data = to_bytes(calibrated)
    assert b"Calibrator" not in data  # plain data: the file names no class of ours for it
    held_out = processed_slice.iloc[TRAIN_ROWS:]
    expected = calibrator.apply(model.predict_proba(request_columns(held_out)))
    for booster in (LightGBMBooster.from_text, CApiBooster):
        loaded = from_bytes(data, booster=booster)
        assert loaded.calibrator == calibrator
        one = np.array([loaded.predict_one(r) for r in request_records(held_out)])
        assert np.abs(one - expected).max() <= 1e-12
        assert np.abs(loaded.predict_proba(request_columns(held_out)) - expected).max() <= 1e-12
        pyfunc = loaded.predict(held_out)[PREDICTION].to_numpy()
        assert np.abs(pyfunc - expected).max() <= 1e-12
    assert np.abs(expected - model.predict_proba(request_columns(held_out))).max() > 0.01


def test_a_model_file_written_before_calibration_loads_without_one(model):
    payload = pickle.loads(to_bytes(model))
    del payload["calibrator"]  # what files written before issue 15 hold
    old = pickle.dumps(payload)
    assert from_bytes(old).calibrator is None
    assert from_bytes(to_bytes(model)).calibrator is None
