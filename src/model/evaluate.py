"""Metrics and plots of a binary probability model. Figures are `matplotlib.figure.Figure`
objects, not pyplot: no backend, no global state, nothing to close."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
    roc_curve,
)

ECE_BINS = 10  # equal-width bins of predicted probability, for the ECE and the diagram


def reliability_bins(y, p, bins: int = ECE_BINS) -> tuple[np.ndarray, ...]:
    """(rows, mean prediction, observed rate) per equal-width bin of [0, 1]; NaN where a bin
    is empty. A bin holds (lower, upper], the first [0, upper]: the binning of sklearn's
    calibration_curve(strategy="uniform"), so both draw the same curve."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    which = np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], p)
    rows = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):  # empty bins: 0 / 0
        mean_p = np.bincount(which, weights=p, minlength=bins) / rows
        rate = np.bincount(which, weights=y, minlength=bins) / rows
    return rows, mean_p, rate


def expected_calibration_error(y, p, bins: int = ECE_BINS) -> float:
    """Expected calibration error (ECE): the rows binned by predicted probability into `bins`
    equal-width bins of [0, 1]; in each non-empty bin b, |mean prediction - observed delay
    rate|; averaged over the bins weighted by their rows: sum_b (n_b / n) |p_b - y_b|.
    0 is perfect calibration; the monitor's alarm and the gate read this one definition."""
    rows, mean_p, rate = reliability_bins(y, p, bins)
    filled = rows > 0
    return float(np.sum(rows[filled] * np.abs(mean_p[filled] - rate[filled])) / rows.sum())


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "base_rate": float(np.mean(y)),
        "mean_prediction": float(np.mean(p)),
        "rows": float(len(y)),
    }


def auc_by_group(y: np.ndarray, p: np.ndarray, group: np.ndarray) -> dict:
    """ROC AUC per group value (e.g. month, lead); groups with one class only are skipped."""
    out = {}
    group = np.asarray(group)
    for g in np.unique(group):
        mask = group == g
        if len(np.unique(y[mask])) == 2:
            out[g.item()] = float(roc_auc_score(y[mask], p[mask]))
    return out


def roc_figure(y, scores: dict[str, np.ndarray]) -> Figure:
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    for name, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC (test)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def calibration_figure(y, scores: dict[str, np.ndarray], bins: int = ECE_BINS) -> Figure:
    """Reliability diagram: observed delay rate against mean prediction per bin (the ECE's
    bins, the ECE in the legend), over a histogram of the predictions (where the rows are)."""
    fig = Figure(figsize=(5, 6))
    ax, hist = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    for name, p in scores.items():
        rows, mean_p, rate = reliability_bins(y, p, bins)
        ece = expected_calibration_error(y, p, bins)
        ax.plot(mean_p[rows > 0], rate[rows > 0], "o-", ms=3, label=f"{name} (ECE {ece:.4f})")
        hist.hist(p, bins=np.linspace(0, 1, bins + 1), histtype="step", label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(ylabel="Observed delay rate", title="Calibration (test)", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    hist.set(xlabel="Predicted probability", ylabel="Rows")
    fig.tight_layout()
    return fig


def importance_figure(names, gains: np.ndarray) -> Figure:
    shares = dict(zip(names, (gains / gains.sum()).tolist(), strict=True))
    return bar_figure(shares, "Share of total gain", "LightGBM feature importance")


def bar_figure(values: dict[str, float], xlabel: str, title: str, height: float = 6) -> Figure:
    """One horizontal bar a name, the largest at the top."""
    names = sorted(values, key=values.__getitem__)
    fig = Figure(figsize=(6, height))
    ax = fig.subplots()
    ax.barh(names, [values[n] for n in names])
    ax.set(xlabel=xlabel, title=title)
    fig.tight_layout()
    return fig
