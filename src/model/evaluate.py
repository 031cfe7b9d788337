"""Metrics and plots for a binary probability model (pure functions + figure builders).

Figures are `matplotlib.figure.Figure` objects, not pyplot: no backend, no global state, no
window, and nothing to close (mlflow.log_figure and Figure.savefig write them to files).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
    roc_curve,
)


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "base_rate": float(np.mean(y)),
        "mean_prediction": float(np.mean(p)),
        "rows": float(len(y)),
    }


def auc_by_group(y: np.ndarray, p: np.ndarray, group: np.ndarray) -> dict[int, float]:
    """ROC AUC per group value (e.g. month); groups with one class only are skipped."""
    out = {}
    for g in np.unique(group):
        mask = group == g
        if len(np.unique(y[mask])) == 2:
            out[int(g)] = float(roc_auc_score(y[mask], p[mask]))
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


def calibration_figure(y, scores: dict[str, np.ndarray], bins: int = 15) -> Figure:
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    for name, p in scores.items():
        frac, mean = calibration_curve(y, p, n_bins=bins, strategy="quantile")
        ax.plot(mean, frac, "o-", ms=3, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="Predicted probability", ylabel="Observed delay rate", title="Calibration")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def importance_figure(names, gains: np.ndarray) -> Figure:
    order = np.argsort(gains)
    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    ax.barh(np.asarray(names)[order], gains[order] / gains.sum())
    ax.set(xlabel="Share of total gain", title="LightGBM feature importance")
    fig.tight_layout()
    return fig
