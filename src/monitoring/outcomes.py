"""Live performance: the API's logged predictions joined with the delays observed later
(CSV files in data/outcomes/: OUTCOME_KEY and `dep_delay`, empty when cancelled). Every
prediction is counted in one bucket: joined, cancelled (no label) or unmatched (no flight
number, or no outcome yet); none is dropped silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

from src.common.errors import SchemaError
from src.common.schema import DELAY_MINUTES, OUTCOME_KEY, PREDICTION, TARGET
from src.model.evaluate import expected_calibration_error

OUTCOME_COLUMNS = (*OUTCOME_KEY, "dep_delay")
SHADOW_VERSION, SHADOW_PREDICTION = "shadow_version", "shadow_probability"


def read_outcomes(folder: Path) -> pd.DataFrame:
    """Every outcomes-*.csv in `folder` as one frame (empty when none has arrived yet)."""
    frames = []
    for path in sorted(folder.glob("outcomes-*.csv")):
        frame = pd.read_csv(path)
        missing = [c for c in OUTCOME_COLUMNS if c not in frame]
        if missing:
            raise SchemaError(f"{path}: missing column(s) {missing}; expected {OUTCOME_COLUMNS}")
        frames.append(frame[list(OUTCOME_COLUMNS)])
    if not frames:
        return pd.DataFrame(columns=list(OUTCOME_COLUMNS))
    outcomes = pd.concat(frames, ignore_index=True)
    repeated = outcomes.duplicated(list(OUTCOME_KEY))
    if repeated.any():
        first = outcomes.loc[repeated, list(OUTCOME_KEY)].iloc[0].to_dict()
        raise SchemaError(f"{folder}: {int(repeated.sum())} outcome(s) repeat a key, e.g. {first}")
    return outcomes


def join_outcomes(predictions: pd.DataFrame, outcomes: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """(the predictions that have an observed departure, with TARGET; counts of every bucket)."""
    keyed = predictions.dropna(subset=list(OUTCOME_KEY))
    keys = {c: "int64" if c in ("year", "month", "day", "flight") else str for c in OUTCOME_KEY}
    merged = keyed.astype(keys).merge(
        outcomes.astype(keys), on=list(OUTCOME_KEY), how="left", indicator=True
    )
    found = merged["_merge"] == "both"
    departed = found & merged["dep_delay"].notna()
    joined = merged[departed].drop(columns="_merge")
    joined[TARGET] = (joined["dep_delay"] >= DELAY_MINUTES).astype(int)
    counts = {
        "predictions": len(predictions),
        "joined": int(departed.sum()),
        "cancelled": int((found & ~departed).sum()),
        "unmatched": len(predictions) - int(found.sum()),
    }
    return joined.reset_index(drop=True), counts


def live_figures(joined: pd.DataFrame) -> list[dict]:
    """ROC AUC, log loss and calibration (the overall gap and the ECE) on the joined rows,
    per role (the served champion; the shadow challenger) and model version."""
    groups = [("champion", "model_version", PREDICTION)]
    if SHADOW_VERSION in joined:
        groups.append(("challenger", SHADOW_VERSION, SHADOW_PREDICTION))
    figures = []
    for role, version_column, score_column in groups:
        scored = joined.dropna(subset=[version_column, score_column])
        for version, rows in scored.groupby(version_column, sort=True):
            figures.append({"role": role, "version": str(version), **_figures(rows, score_column)})
    return figures


def _figures(rows: pd.DataFrame, score_column: str) -> dict:
    y, p = rows[TARGET].to_numpy(), rows[score_column].to_numpy(dtype=float)
    both = len(np.unique(y)) == 2
    return {
        "rows": len(rows),
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "mean_prediction": float(p.mean()),
        "observed_rate": float(y.mean()),
        "calibration_gap": float(p.mean() - y.mean()),
        "ece": expected_calibration_error(y, p),  # the monitor's and the gate's definition
    }
