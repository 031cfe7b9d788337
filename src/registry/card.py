"""The model card, rendered from the registered champion's run (never hand-typed)."""

from __future__ import annotations

from src.common.render import render
from src.common.schema import DELAY_MINUTES, FEATURES

METRICS = (
    ("roc_auc", "ROC AUC"),
    ("pr_auc", "PR AUC"),
    ("log_loss", "Log loss"),
    ("brier", "Brier"),
    ("base_rate", "Delay rate"),
    ("rows", "Rows"),
)
MONTH_METRIC = "test_roc_auc_month_"


def render_model_card(meta: dict, params: dict) -> str:
    """`meta`: the export's metadata (src/registry/export.py); `params`: the run's params."""
    months = sorted(
        (key.removeprefix(MONTH_METRIC), value)
        for key, value in meta["metrics"].items()
        if key.startswith(MONTH_METRIC)
    )
    hyper = ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if not k.startswith("split_"))
    return render(
        "model_card.md.j2",
        meta=meta,
        hyperparameters=hyper,
        metrics=METRICS,
        months=months,
        features=FEATURES,
        delay_minutes=DELAY_MINUTES,
    )
