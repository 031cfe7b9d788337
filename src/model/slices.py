"""The test months cut by carrier, origin, scheduled hour band, plane and weather: each
slice's figures (ROC AUC with a bootstrap interval) and the findings the model card reads.
Small slices are grouped into one "other", not dropped: each dimension adds up to the whole.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

from src.common.schema import TARGET, WEATHER
from src.model.gate import bootstrap_aucs

ALPHA = 0.05  # a 95% interval, as the gate's
OVERALL = "overall"  # the dimension (and slice "all") of the whole test set
OTHER = "other"  # the slice that groups a dimension's small slices
# Scheduled departure hour (local) -> band: the first hour of each band after the first.
HOUR_EDGES = (10, 14, 18)
HOUR_BANDS = ("00-09", "10-13", "14-17", "18-23")
AUC = ("roc_auc", "roc_auc_low", "roc_auc_high")
FIGURES = ("rows", "base_rate", *AUC, "log_loss", "mean_prediction")
COLUMNS = ("dimension", "slice", "members", *FIGURES)


def hour_band(hour) -> np.ndarray:
    return np.asarray(HOUR_BANDS)[np.digitize(np.asarray(hour, dtype=int), HOUR_EDGES)]


def slice_labels(frame: pd.DataFrame, known_tailnums) -> dict[str, np.ndarray]:
    """Each dimension's slice label per row. A plane is matched when the model's plane table
    knows its tail number; weather is missing when the row holds no reading at all."""
    weather = frame.reindex(columns=[c.name for c in WEATHER]).notna().any(axis=1)
    return {
        OVERALL: np.full(len(frame), "all"),
        "carrier": frame["carrier"].astype(str).to_numpy(),
        "origin": frame["origin"].astype(str).to_numpy(),
        "hour_band": hour_band(frame["hour"]),
        "plane": np.where(frame["tailnum"].isin(known_tailnums), "matched", "unknown"),
        "weather": np.where(weather, "present", "missing"),
    }


def group_small(labels: np.ndarray, min_rows: int) -> tuple[np.ndarray, str]:
    """Labels with the slices under `min_rows` rows replaced by OTHER, and the grouped values
    ("AS, F9, YV"; "" when none is grouped). A lone small slice keeps its name: grouping it
    with nothing would only hide what it is (weather "missing" is the usual one)."""
    values, counts = np.unique(labels, return_counts=True)
    small = values[counts < min_rows]
    if len(small) < 2:
        return labels, ""
    return np.where(np.isin(labels, small), OTHER, labels), ", ".join(small.tolist())


def slice_figures(y: np.ndarray, p: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    """FIGURES of one slice; one holding a single class has no AUC (NaN)."""
    figures = {
        "rows": len(y),
        "base_rate": float(y.mean()),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "mean_prediction": float(p.mean()),
    }
    if y.min() == y.max():
        return figures | dict.fromkeys(AUC, np.nan)
    low, high = np.quantile(bootstrap_aucs(y, p, n_boot, seed), [ALPHA / 2, 1 - ALPHA / 2])
    auc = float(roc_auc_score(y, p))
    return figures | {"roc_auc": auc, "roc_auc_low": float(low), "roc_auc_high": float(high)}


def slice_table(
    frame: pd.DataFrame, scores, known_tailnums, min_rows: int, n_boot: int, seed: int
) -> pd.DataFrame:
    """One row for the whole frame (OVERALL), then one per slice of each dimension, OTHER
    last. `scores`: the model's probabilities for `frame`'s rows."""
    y, p = frame[TARGET].to_numpy(dtype=float), np.asarray(scores, dtype=float)
    if p.shape != y.shape:
        raise ValueError(f"{len(p)} scores for {len(y)} rows: score every row of the frame")
    rows = []
    for dimension, labels in slice_labels(frame, known_tailnums).items():
        labels, members = group_small(labels, min_rows)
        for value in sorted(np.unique(labels), key=lambda v: (v == OTHER, v)):
            mask, grouped = labels == value, members if value == OTHER else ""
            row = {"dimension": dimension, "slice": str(value), "members": grouped}
            rows.append(row | slice_figures(y[mask], p[mask], n_boot, seed))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def as_records(table: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts, NaN as None: for JSON, and for a template's '–'."""
    return table.astype(object).where(table.notna(), None).to_dict("records")


def weak_findings(table: pd.DataFrame) -> dict:
    """What the model card's "Where the model is weak" says, as data: the overall row; the
    slices whose whole AUC interval lies below the overall AUC (lowest first), and the
    dimensions all of whose slices do; the lowest-AUC slice of each dimension of several
    rated slices; the slice whose mean prediction is furthest from its delay rate (`gap` =
    mean prediction - delay rate); the slices with no AUC (one class)."""
    table = table.astype({f: float for f in FIGURES if f != "rows"})  # None (JSON) -> NaN
    overall = table[table["dimension"] == OVERALL].iloc[0]
    parts = table[table["dimension"] != OVERALL]
    rated = parts[parts["roc_auc"].notna()]
    below = rated[rated["roc_auc_high"] < overall["roc_auc"]]
    several = rated.groupby("dimension", sort=False).filter(lambda d: len(d) > 1)
    below_in = below.groupby("dimension", sort=False).size()
    rated_in = several.groupby("dimension", sort=False).size()
    worst = several.loc[several.groupby("dimension", sort=False)["roc_auc"].idxmin()]
    gap = parts["mean_prediction"] - parts["base_rate"]
    furthest = parts.loc[[gap.abs().idxmax()]].assign(gap=gap)
    return {
        "overall": as_records(overall.to_frame().T)[0],
        "below_overall": as_records(below.sort_values("roc_auc")),
        "all_below": [d for d, n in rated_in.items() if below_in.get(d, 0) == n],
        "worst_by_dimension": as_records(worst),
        "largest_gap": as_records(furthest)[0],
        "no_auc": as_records(parts[parts["roc_auc"].isna()]),
    }
