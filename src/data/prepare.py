"""From validated raw tables to the processed splits (pure: frames in, frames out).

Cancelled flights out (EDA-01), weather joined in UTC (EDA-02), the target added, a split by
month (EDA-08), a reference sample for drift, and the figures the manifest records.
"""

from __future__ import annotations

import pandas as pd

from src.common.config import Config, Split
from src.common.errors import PipelineError
from src.common.paths import SPLITS
from src.common.schema import (
    API_REQUEST_FIELDS,
    DELAY_MINUTES,
    FLIGHTS,
    PLANES,
    TARGET,
    WEATHER,
    WEATHER_TABLE,
)

PROCESSED_COLUMNS = ("time_hour", *API_REQUEST_FIELDS, TARGET)
PLANE_COLUMNS = ("tailnum", "year", "seats", "engines", "manufacturer")


def drop_cancelled(flights: pd.DataFrame) -> pd.DataFrame:
    """EDA-01: a cancelled flight (no dep_delay) has no label; its missing tailnum leaks."""
    return flights[flights["dep_delay"].notna()]


def join_weather(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    """EDA-02: join on (origin, time_hour) in UTC; local hours repeat at DST fall-back."""
    cols = ["origin", "time_hour", *(c.name for c in WEATHER)]
    return flights.merge(weather[cols], on=["origin", "time_hour"], how="left", validate="m:1")


def add_target(flights: pd.DataFrame) -> pd.DataFrame:
    """The label (departed DELAY_MINUTES+ late), rows in key order, the processed columns."""
    out = flights.assign(**{TARGET: (flights["dep_delay"] >= DELAY_MINUTES).astype("int8")})
    out = out.sort_values(list(FLIGHTS.key), kind="stable").reset_index(drop=True)
    return out[list(PROCESSED_COLUMNS)]


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
        "weather_match_rate": round(float(kept["temp"].notna().mean()), 6),
        "plane_match_rate": round(float(kept["tailnum"].isin(planes["tailnum"]).mean()), 6),
        "delay_rate": round(float(kept[TARGET].mean()), 6),
    }


def preprocess(tables: dict, cfg: Config) -> tuple[dict[str, pd.DataFrame], dict]:
    """Validated raw tables -> (the processed frames by name, the data stats)."""
    flights, planes = tables[FLIGHTS.name], tables[PLANES.name]
    kept = add_target(join_weather(drop_cancelled(flights), tables[WEATHER_TABLE.name]))
    outputs = split_by_month(kept, cfg.split)
    outputs["reference"] = reference_sample(outputs["train"], cfg.split.reference_rows, cfg.seed)
    outputs["planes"] = planes[list(PLANE_COLUMNS)].sort_values("tailnum").reset_index(drop=True)
    for name in (*SPLITS, "reference"):
        if outputs[name].empty:
            raise PipelineError(f"split '{name}' is empty: check split months in the config")
    return outputs, data_stats(flights, kept, planes)
