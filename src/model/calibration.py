"""Post-hoc calibration, fitted and chosen on the validation window only, forward in time.

A calibrator fitted and judged on the same rows always "lowers" log loss, so each method is
fitted on the earlier half of the validation rows (date order) and judged on the later half
against the raw model. The best is kept only if it lowers that log loss; it is then refit on
the whole window and attached to the model, which applies it in every path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from src.common.schema import TARGET
from src.model.evaluate import expected_calibration_error
from src.model.features import request_columns
from src.model.model import (
    PROBABILITY_FLOOR,
    Calibrator,
    FlightDelayModel,
    IsotonicCalibrator,
    PlattCalibrator,
    logit,
)

# The forward judge's log loss per candidate ("raw" or a method), as a metric-name prefix:
# the run logs it, and the model card reads it back (`later_log_losses`).
LATER_LOG_LOSS = "calibration_later_log_loss_"
# Date order of a split's rows: the day, then the scheduled departure (hour, minute).
TIME_ORDER = ("month", "day", "hour", "minute")


def fit_platt(p: np.ndarray, y: np.ndarray) -> PlattCalibrator:
    """Platt scaling: a logistic regression of y on logit(p), unpenalised (C=inf), so the
    two numbers are the maximum-likelihood fit rather than shrunk towards a flat line."""
    fitted = LogisticRegression(C=np.inf).fit(logit(p)[:, np.newaxis], y)
    return PlattCalibrator(float(fitted.coef_[0, 0]), float(fitted.intercept_[0]))


def fit_isotonic(p: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
    """Isotonic regression of y on p, its outputs kept within PROBABILITY_FLOOR of 0 and 1
    (a bin without a delay would otherwise predict exactly 0)."""
    fitted = IsotonicRegression(
        y_min=PROBABILITY_FLOOR, y_max=1 - PROBABILITY_FLOOR, out_of_bounds="clip"
    ).fit(p, y)
    return IsotonicCalibrator(
        tuple(map(float, fitted.X_thresholds_)), tuple(map(float, fitted.y_thresholds_))
    )


CALIBRATORS: dict[str, Callable[[np.ndarray, np.ndarray], Calibrator]] = {
    "platt": fit_platt,
    "isotonic": fit_isotonic,
}


def time_halves(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the frame's rows in date order, split into an earlier and a later half."""
    keys = [frame[c].to_numpy() for c in reversed(TIME_ORDER) if c in frame]
    positions = np.lexsort(keys) if keys else np.arange(len(frame))
    return positions[: len(frame) // 2], positions[len(frame) // 2 :]


def forward_figures(
    raw: np.ndarray, y: np.ndarray, methods: Sequence[str], earlier: np.ndarray, later: np.ndarray
) -> dict[str, float]:
    """Log loss and ECE on the later rows of the raw scores (`raw`) and of each method fitted
    on the earlier rows, and the rows of each half."""
    scored = {"raw": raw[later]}
    for method in methods:
        scored[method] = CALIBRATORS[method](raw[earlier], y[earlier]).apply(raw[later])
    figures = {"calibration_earlier_rows": float(len(earlier))}
    figures["calibration_later_rows"] = float(len(later))
    for name, p in scored.items():
        figures[f"{LATER_LOG_LOSS}{name}"] = float(log_loss(y[later], p, labels=[0, 1]))
        figures[f"calibration_later_ece_{name}"] = expected_calibration_error(y[later], p)
    return figures


def later_log_losses(metrics: dict) -> dict[str, float]:
    """{"raw": ..., "<method>": ...}: the later-half log losses in `forward_figures`' figures
    or a run's metrics."""
    return {
        k.removeprefix(LATER_LOG_LOSS): v
        for k, v in metrics.items()
        if k.startswith(LATER_LOG_LOSS)
    }


def calibrate(
    model: FlightDelayModel, validation: pd.DataFrame, methods: Sequence[str]
) -> tuple[FlightDelayModel, dict]:
    """(the model with the best of `methods` attached, or none, {"method": the one kept or
    None, "metrics": `forward_figures`}). A calibrator `model` had is dropped first."""
    unknown = sorted(set(methods) - set(CALIBRATORS))
    if unknown:
        raise ValueError(f"calibration methods {unknown}: expected some of {sorted(CALIBRATORS)}")
    raw_model = replace(model, calibrator=None)
    y = validation[TARGET].to_numpy()
    raw = raw_model.predict_proba(request_columns(validation))
    metrics = forward_figures(raw, y, methods, *time_halves(validation))
    loss = later_log_losses(metrics)
    raw_loss = loss.pop("raw")
    best = min(loss, key=loss.__getitem__, default=None)
    if best is None or loss[best] >= raw_loss:
        return raw_model, {"method": None, "metrics": metrics}
    calibrated = replace(raw_model, calibrator=CALIBRATORS[best](raw, y))  # refit on all rows
    return calibrated, {"method": best, "metrics": metrics}
