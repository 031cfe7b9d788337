"""From the labelled examples to the processed splits (pure: frames in, frames out).

The examples come from the feature store (src/featurestore/training.py): each flight that
left (EDA-01), once per lead, with what the store held as of its moment. Here they get their
order and kinds, a split by month (EDA-08), a reference sample for drift, and the figures
the manifest records.
"""

from __future__ import annotations

import pandas as pd

from src.common.config import Config, Split
from src.common.errors import PipelineError
from src.common.paths import SPLITS
from src.common.schema import API_REQUEST, API_REQUEST_FIELDS, FLIGHTS, PLANES, TARGET

PROCESSED_COLUMNS = ("time_hour", "as_of", *API_REQUEST_FIELDS, TARGET)
# One flight's examples side by side, earliest moment first; flights in FLIGHTS.key order.
EXAMPLE_ORDER = ["year", "month", "day", "carrier", "flight", "origin", "as_of"]
PLANE_COLUMNS = ("tailnum", "year", "seats", "engines", "manufacturer")
FLOATS = [c.name for c in API_REQUEST if c.kind == "float"]


def processed_rows(examples: pd.DataFrame) -> pd.DataFrame:
    """The examples in order, as the processed columns; every float field as float64 (a
    count with no gap comes as int64, which the MLflow signature's double refuses)."""
    missing = [c for c in PROCESSED_COLUMNS if c not in examples]
    if missing:
        raise PipelineError(f"examples: column(s) {missing} missing")
    out = examples.sort_values(EXAMPLE_ORDER, kind="stable").reset_index(drop=True)
    return out[list(PROCESSED_COLUMNS)].astype(dict.fromkeys(FLOATS, "float64"))


def at_lead(examples: pd.DataFrame, lead_hours: float) -> pd.DataFrame:
    """The examples at one lead: each flight once, as it is served."""
    return examples[examples["lead_hours"] == lead_hours].reset_index(drop=True)


def split_by_month(df: pd.DataFrame, split: Split) -> dict[str, pd.DataFrame]:
    """EDA-08: a time split (months of 2013), never random."""
    months = {name: getattr(split, f"{name}_months") for name in SPLITS}
    return {name: df[df["month"].isin(m)].reset_index(drop=True) for name, m in months.items()}


def reference_sample(train: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    n = min(rows, len(train))
    return train.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def data_stats(flights: pd.DataFrame, kept: pd.DataFrame, planes: pd.DataFrame) -> dict:
    """Cancellation, weather and plane match rates and the delay rate, for the manifest."""
    cancelled = flights["dep_delay"].isna()
    by_month = cancelled.groupby(flights["month"]).mean().round(6)
    return {
        "flights": len(flights),
        "cancelled": int(cancelled.sum()),
        "cancellation_rate": round(float(cancelled.mean()), 6),
        "cancellation_rate_by_month": {int(m): float(r) for m, r in by_month.items()},
        "examples": len(kept),
        "weather_match_rate": round(float(kept["temp"].notna().mean()), 6),
        "plane_match_rate": round(float(kept["tailnum"].isin(planes["tailnum"]).mean()), 6),
        "delay_rate": round(float(kept[TARGET].mean()), 6),
    }


def preprocess(
    tables: dict, examples: pd.DataFrame, cfg: Config
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Validated raw tables and the labelled examples -> (the processed frames by name, the
    data stats). The drift reference samples the train split at the served lead."""
    flights, planes = tables[FLIGHTS.name], tables[PLANES.name]
    kept = processed_rows(examples)
    outputs = split_by_month(kept, cfg.split)
    served = at_lead(outputs["train"], cfg.split.served_lead_hours)
    outputs["reference"] = reference_sample(served, cfg.split.reference_rows, cfg.seed)
    outputs["planes"] = planes[list(PLANE_COLUMNS)].sort_values("tailnum").reset_index(drop=True)
    for name in (*SPLITS, "reference"):
        if outputs[name].empty:
            raise PipelineError(f"split '{name}' is empty: check split months in the config")
    return outputs, data_stats(flights, kept, planes)
