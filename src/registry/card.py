"""The model card, rendered from the registered champion's run (never hand-typed)."""

from __future__ import annotations

import pandas as pd

from src.common.render import render
from src.common.schema import DELAY_MINUTES
from src.model.calibration import later_log_losses
from src.model.features import EXPLANATION_GROUPS, group_key
from src.model.slices import as_records, weak_findings
from src.tracking.runs import CONTRIBUTION_METRIC, EXPLAINED_METRIC

METRICS = (
    ("roc_auc", "ROC AUC"),
    ("pr_auc", "PR AUC"),
    ("log_loss", "Log loss"),
    ("brier", "Brier"),
    ("ece", "ECE"),
    ("base_rate", "Delay rate"),
    ("rows", "Rows"),
)
MONTH_METRIC = "test_roc_auc_month_"
LEAD_METRIC = "test_roc_auc_lead_"  # then the lead and "h": test_roc_auc_lead_2h
OWN_LINES = ("calibrator", "features")  # params the card shows on a line of their own


def render_model_card(meta: dict, params: dict, slices: dict | None = None) -> str:
    """From the export's metadata, the run's params and its slice table (None: none)."""
    months = sorted(
        (key.removeprefix(MONTH_METRIC), value)
        for key, value in meta["metrics"].items()
        if key.startswith(MONTH_METRIC)
    )
    leads = sorted(
        (float(key.removeprefix(LEAD_METRIC).removesuffix("h")), value)
        for key, value in meta["metrics"].items()
        if key.startswith(LEAD_METRIC)
    )
    hyper = ", ".join(
        f"{k}={v}"
        for k, v in sorted(params.items())
        if not k.startswith("split_") and k not in OWN_LINES
    )
    return render(
        "model_card.md.j2",
        meta=meta,
        hyperparameters=hyper,
        calibration=calibration_line(params.get("calibrator", "none"), meta["metrics"]),
        metrics=METRICS,
        months=months,
        leads=[(f"{lead:g} h", auc) for lead, auc in leads],
        served_lead=params.get("split_served_lead_hours"),
        features=params.get("features", "").split(","),
        delay_minutes=DELAY_MINUTES,
        importance=group_importance(meta["metrics"]),
        explained=meta["metrics"].get(EXPLAINED_METRIC),
        **slice_context(slices),
    )


BAR_WIDTH = 20  # characters of the largest group's bar in the card's importance plot


def group_importance(metrics: dict) -> list[tuple[str, float, str]]:
    """(group, mean absolute contribution, its bar), largest first; empty when the run logged
    none. The bars plot the table in any Markdown viewer: the largest is BAR_WIDTH blocks,
    the others in proportion."""
    found = [
        (group, metrics[CONTRIBUTION_METRIC + group_key(group)])
        for group, _ in EXPLANATION_GROUPS
        if CONTRIBUTION_METRIC + group_key(group) in metrics
    ]
    found.sort(key=lambda item: -item[1])
    top = found[0][1] if found and found[0][1] > 0 else 1.0
    return [(group, value, "█" * round(BAR_WIDTH * value / top)) for group, value in found]


def calibration_line(kept: str, metrics: dict) -> str:
    """The calibrator kept, with the log losses it was chosen by (raw first)."""
    losses = later_log_losses(metrics)
    if not losses:
        return kept
    order = sorted(losses, key=lambda name: (name != "raw", name))
    figures = ", ".join(f"{name} {losses[name]:.4f}" for name in order)
    return f"{kept} (chosen by log loss on the later half of the validation window: {figures})"


def slice_context(slices: dict | None) -> dict:
    """The slice table's rows, its settings and the weak findings for the template."""
    if slices is None:
        return {"slices": None, "slice_settings": None, "weak": None}
    table = pd.DataFrame(slices["slices"])
    settings = {k: v for k, v in slices.items() if k != "slices"}
    return {"slices": as_records(table), "slice_settings": settings, "weak": weak_findings(table)}
