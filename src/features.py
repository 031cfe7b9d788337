"""Feature derivation that lives inside the model (see DESIGN.md).

Everything here works over columns (numpy arrays), so the same code turns a 300k-row
training frame and a one-flight request into the model's matrix, with no pandas in the
hot path. `FeatureState` is the fitted part (category maps, plane table, holiday calendar);
it is saved inside the logged model, so training and serving cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from src.common.schema import CATEGORICAL_FEATURES, FEATURES, WEATHER

MAX_WIND_SPEED = 100.0  # mph; above is a sensor error (EDA-03)

# EDA-09: plane manufacturers grouped; anything else is OTHER, an unknown plane is missing.
MANUFACTURER_GROUPS = {
    "AIRBUS": "AIRBUS",
    "AIRBUS INDUSTRIE": "AIRBUS",
    "BOEING": "BOEING",
    "BOMBARDIER INC": "BOMBARDIER",
    "CANADAIR": "BOMBARDIER",
    "CANADAIR LTD": "BOMBARDIER",
    "EMBRAER": "EMBRAER",
    "MCDONNELL DOUGLAS": "MCDONNELL DOUGLAS",
    "MCDONNELL DOUGLAS AIRCRAFT CO": "MCDONNELL DOUGLAS",
    "MCDONNELL DOUGLAS CORPORATION": "MCDONNELL DOUGLAS",
}
MANUFACTURERS = ("AIRBUS", "BOEING", "BOMBARDIER", "EMBRAER", "MCDONNELL DOUGLAS", "OTHER")
Columns = Mapping[str, "np.ndarray | list"]


@dataclass(frozen=True)
class FeatureState:
    categories: dict[str, np.ndarray]  # sorted known values per categorical feature
    plane_tailnum: np.ndarray  # sorted
    plane_year: np.ndarray
    plane_seats: np.ndarray
    plane_engines: np.ndarray
    plane_manufacturer: np.ndarray  # grouped names (EDA-09)
    holidays: np.ndarray  # sorted days since 1970-01-01 of US federal holidays (observed)


def group_manufacturer(names: np.ndarray) -> np.ndarray:
    return np.array([MANUFACTURER_GROUPS.get(n, "OTHER") for n in names], dtype=str)


def us_federal_holidays(first_year: int = 2000, last_year: int = 2040) -> np.ndarray:
    from pandas.tseries.holiday import USFederalHolidayCalendar  # fit time only

    days = USFederalHolidayCalendar().holidays(f"{first_year}-01-01", f"{last_year}-12-31")
    return np.sort(days.values.astype("datetime64[D]").astype(np.int64))


def fit_state(train: Columns, planes: Columns) -> FeatureState:
    """Learn category maps from the training rows; keep the plane table (EDA-04)."""
    categories = {c: np.unique(_strings(train[c])) for c in ("carrier", "origin", "dest")}
    categories = {c: v[v != ""] for c, v in categories.items()}
    categories["manufacturer"] = np.array(MANUFACTURERS, dtype=str)
    tail = _strings(planes["tailnum"])
    order = np.argsort(tail)
    return FeatureState(
        categories=categories,
        plane_tailnum=tail[order],
        plane_year=np.asarray(planes["year"], dtype=float)[order],
        plane_seats=np.asarray(planes["seats"], dtype=float)[order],
        plane_engines=np.asarray(planes["engines"], dtype=float)[order],
        plane_manufacturer=group_manufacturer(_strings(planes["manufacturer"]))[order],
        holidays=us_federal_holidays(),
    )


def _strings(values) -> np.ndarray:
    """Fixed-width unicode array; missing (None/NaN) becomes ''."""
    arr = np.asarray(values, dtype=object)
    return np.array([v if isinstance(v, str) else "" for v in arr.ravel()], dtype=str)


def _index(sorted_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of each value in sorted_keys, -1 where absent."""
    if len(sorted_keys) == 0:
        return np.full(len(values), -1)
    pos = np.minimum(np.searchsorted(sorted_keys, values), len(sorted_keys) - 1)
    return np.where(sorted_keys[pos] == values, pos, -1)


def encode(known: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Category codes as floats; unseen or missing values become NaN (LightGBM: missing)."""
    idx = _index(known, values).astype(float)
    idx[idx < 0] = np.nan
    return idx


def days_since_epoch(year, month, day) -> np.ndarray:
    months = (np.asarray(year, dtype=np.int64) - 1970) * 12 + np.asarray(month, dtype=np.int64) - 1
    first = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    return first + np.asarray(day, dtype=np.int64) - 1


def nearest_holiday(days: np.ndarray, holidays: np.ndarray) -> np.ndarray:
    """Signed days to the nearest holiday: positive when it lies ahead (EDA-10)."""
    pos = np.clip(np.searchsorted(holidays, days), 1, len(holidays) - 1)
    ahead = holidays[pos] - days
    behind = holidays[pos - 1] - days
    return np.where(np.abs(behind) < np.abs(ahead), behind, ahead).astype(float)


def plane_features(state: FeatureState, tailnum: np.ndarray, year: np.ndarray) -> dict:
    idx = _index(state.plane_tailnum, tailnum)
    known = idx >= 0
    safe = np.where(known, idx, 0)

    def pick(col: np.ndarray) -> np.ndarray:
        return np.where(known, col[safe], np.nan)

    manufacturer = np.where(known, state.plane_manufacturer[safe], "")
    return {
        "plane_age": year - pick(state.plane_year),
        "seats": pick(state.plane_seats),
        "engines": pick(state.plane_engines),
        "manufacturer": encode(state.categories["manufacturer"], manufacturer),
    }


def weather_features(cols: Columns) -> dict:
    out = {c.name: np.asarray(cols[c.name], dtype=float) for c in WEATHER}
    wind = out["wind_speed"].copy()
    wind[wind > MAX_WIND_SPEED] = np.nan  # EDA-03
    out["wind_speed"] = wind
    return out


def build_features(cols: Columns, state: FeatureState) -> np.ndarray:
    """Raw flight records (REQUEST fields, as columns) -> float matrix in FEATURES order."""
    year = np.asarray(cols["year"], dtype=float)
    days = days_since_epoch(cols["year"], cols["month"], cols["day"])
    to_holiday = nearest_holiday(days, state.holidays)
    feats = {c: encode(state.categories[c], _strings(cols[c])) for c in CATEGORICAL_FEATURES[:3]}
    feats |= plane_features(state, _strings(cols["tailnum"]), year)
    feats |= weather_features(cols)
    feats |= {
        "distance": np.asarray(cols["distance"], dtype=float),
        "hour": np.asarray(cols["hour"], dtype=float),
        "minute": np.asarray(cols["minute"], dtype=float),
        "day_of_week": ((days + 3) % 7).astype(float),  # 1970-01-01 was a Thursday; Monday=0
        "days_to_holiday": to_holiday,
        "abs_days_to_holiday": np.abs(to_holiday),
    }
    return np.column_stack([feats[name] for name in FEATURES])


def decode_categories(matrix: np.ndarray, state: FeatureState) -> dict[str, np.ndarray]:
    """Human-readable categorical columns back from codes (for drift reports)."""
    out = {}
    for i, name in enumerate(CATEGORICAL_FEATURES):
        codes = matrix[:, i]
        known = ~np.isnan(codes)
        labels = np.full(len(codes), None, dtype=object)
        labels[known] = state.categories[name][codes[known].astype(int)]
        out[name] = labels
    return out
