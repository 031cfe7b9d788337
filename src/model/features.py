"""Feature derivation that lives inside the model, so training and serving cannot drift apart.

Everything works over numpy columns: one code path, no pandas, for a 300k-row training frame
and a one-flight request. `FeatureState`, the fitted part, is saved in the model file; its
ordered feature list is the model's contract: scoring builds exactly those, and a file naming
a feature this code cannot build is refused when it loads (`check_buildable`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np

from src.common.errors import PipelineError, SchemaError
from src.common.schema import (
    CATEGORICAL_FEATURES,
    FEATURES,
    REQUEST,
    REQUEST_FIELDS,
    STORE_FIELDS,
    WEATHER,
)

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
# Model files written before the feature list was recorded were all trained on these.
UNRECORDED_FEATURES = (
    *("carrier", "origin", "dest", "manufacturer", "distance", "hour", "minute"),
    *("day_of_week", "days_to_holiday", "abs_days_to_holiday", "plane_age", "seats"),
    *("engines", "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip"),
    *("pressure", "visib"),
)


class UnbuildableFeatures(PipelineError):
    """A model file names a feature this code cannot build (trained by other code)."""


@dataclass(frozen=True)
class FeatureState:
    features: tuple[str, ...]  # the model's input, in order: what scoring builds
    categories: dict[str, np.ndarray]  # sorted known values per categorical feature
    plane_tailnum: np.ndarray  # sorted
    plane_year: np.ndarray
    plane_seats: np.ndarray
    plane_engines: np.ndarray
    plane_manufacturer: np.ndarray  # grouped names (EDA-09)
    holidays: np.ndarray  # sorted days since 1970-01-01 of US federal holidays (observed)

    # Lookups derived on first use: one dict hit or one table row per value. Searching the
    # sorted arrays instead costs numpy's per-call overhead several times per feature, which
    # dominated the cost of scoring one flight.
    @cached_property
    def codes(self) -> dict[str, dict[str, float]]:
        """Per categorical feature: value -> code (its position in `categories`)."""
        return {
            c: {v: float(i) for i, v in enumerate(known.tolist())}
            for c, known in self.categories.items()
        }

    @cached_property
    def plane_rows(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.plane_tailnum.tolist())}

    @cached_property
    def plane_table(self) -> np.ndarray:
        """year, seats, engines, manufacturer code per plane, plus a last row of NaN: the
        row of every unknown plane (index -1)."""
        manufacturer = category_codes(self.codes["manufacturer"], self.plane_manufacturer)
        table = np.column_stack(
            [self.plane_year, self.plane_seats, self.plane_engines, manufacturer]
        )
        return np.vstack([table, np.full(4, np.nan)])

    @cached_property
    def holiday_distance(self) -> np.ndarray:
        """nearest_holiday() for every day from the first holiday to the last."""
        return nearest_holiday(np.arange(self.holidays[0], self.holidays[-1] + 1), self.holidays)

    @cached_property
    def builders(self) -> list[Builder]:
        """The groups that compute this model's features, each once."""
        return [build for names, build in GROUPS if not self.features_set.isdisjoint(names)]

    @cached_property
    def features_set(self) -> frozenset[str]:
        return frozenset(self.features)

    @cached_property
    def explanation_groups(self) -> tuple[tuple[str, ...], np.ndarray]:
        """The EXPLANATION_GROUPS holding this model's features, and which feature is in
        which: a (features x groups) matrix of 0 and 1 (a feature's row has one 1)."""
        held = [
            (g, names) for g, names in EXPLANATION_GROUPS if not self.features_set.isdisjoint(names)
        ]
        member = np.array([[f in names for _, names in held] for f in self.features], float)
        return tuple(g for g, _ in held), member

    def __getstate__(self) -> dict:
        """Pickle the fields only: the lookups are rebuilt, and the pickle stays as before."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({"features": UNRECORDED_FEATURES, **state})


def group_manufacturer(names: np.ndarray) -> np.ndarray:
    return np.array([MANUFACTURER_GROUPS.get(n, "OTHER") for n in names], dtype=str)


def us_federal_holidays(first_year: int = 2000, last_year: int = 2040) -> np.ndarray:
    from pandas.tseries.holiday import USFederalHolidayCalendar  # fit time only

    days = USFederalHolidayCalendar().holidays(f"{first_year}-01-01", f"{last_year}-12-31")
    return np.sort(days.values.astype("datetime64[D]").astype(np.int64))


def fit_state(train: Columns, planes: Columns, features: Iterable[str] = FEATURES) -> FeatureState:
    """Learn category maps from the training rows; keep the plane table (EDA-04) and the
    ordered list of features the model is trained on."""
    features = tuple(features)
    check_buildable(features, "train.features")
    categories = {c: np.unique(_strings(train[c])) for c in ("carrier", "origin", "dest")}
    categories = {c: v[v != ""] for c, v in categories.items()}
    categories["manufacturer"] = np.array(MANUFACTURERS, dtype=str)
    tail = _strings(planes["tailnum"])
    order = np.argsort(tail)
    return FeatureState(
        features=features,
        categories=categories,
        plane_tailnum=tail[order],
        plane_year=np.asarray(planes["year"], dtype=float)[order],
        plane_seats=np.asarray(planes["seats"], dtype=float)[order],
        plane_engines=np.asarray(planes["engines"], dtype=float)[order],
        plane_manufacturer=group_manufacturer(_strings(planes["manufacturer"]))[order],
        holidays=us_federal_holidays(),
    )


def request_columns(frame) -> dict[str, np.ndarray]:
    """A pandas frame of flight records as one array per REQUEST field: an optional field left
    out is missing on every row, other columns are ignored."""
    missing = [c.name for c in REQUEST if not c.nullable and c.name not in frame]
    if missing:
        raise SchemaError(f"flight records: required field(s) {missing} missing")
    n = len(frame)
    return {
        c.name: np.asarray(frame[c.name]) if c.name in frame else np.full(n, None, dtype=object)
        for c in REQUEST
    }


def request_records(frame) -> list[dict]:
    """A pandas frame of flights as the JSON records a client of the API sends."""
    rows = frame[list(REQUEST_FIELDS)]
    return rows.astype(object).where(rows.notna(), None).to_dict("records")


def _strings(values) -> np.ndarray:
    """Fixed-width unicode array; missing (None/NaN) becomes ''."""
    arr = np.asarray(values, dtype=object)
    return np.array([v if isinstance(v, str) else "" for v in arr.ravel()], dtype=str)


def category_codes(codes: Mapping[str, float], values: Iterable) -> np.ndarray:
    """Category codes as floats; unseen or missing values become NaN (LightGBM: missing)."""
    return np.array([codes.get(v, np.nan) for v in values], dtype=float)


# Days since 1970-01-01 of the first of each month from January 1970 to December 2100 (the
# schema's last year): a table lookup costs less than numpy's date conversions per call.
MONTH_STARTS = np.arange(131 * 12).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


def days_since_epoch(year, month, day) -> np.ndarray:
    months = (np.asarray(year, dtype=np.int64) - 1970) * 12 + np.asarray(month, dtype=np.int64) - 1
    if np.any((months < 0) | (months >= len(MONTH_STARTS))):
        raise SchemaError(f"year: {sorted(set(np.asarray(year).tolist()))} not all in 1970-2100")
    return MONTH_STARTS[months] + np.asarray(day, dtype=np.int64) - 1


def nearest_holiday(days: np.ndarray, holidays: np.ndarray) -> np.ndarray:
    """Signed days to the nearest holiday: positive when it lies ahead (EDA-10)."""
    pos = np.clip(np.searchsorted(holidays, days), 1, len(holidays) - 1)
    ahead = holidays[pos] - days
    behind = holidays[pos - 1] - days
    return np.where(np.abs(behind) < np.abs(ahead), behind, ahead).astype(float)


def days_to_holiday(days: np.ndarray, state: FeatureState) -> np.ndarray:
    """nearest_holiday() by table lookup: outside the table's span, the nearest holiday is
    its first or last day, which lies `offset - inside` days further away."""
    table = state.holiday_distance
    offset = days - state.holidays[0]
    inside = np.minimum(np.maximum(offset, 0), len(table) - 1)  # np.clip's overhead is higher
    return table[inside] + (inside - offset)


def category_features(cols: Columns, state: FeatureState) -> dict:
    return {c: category_codes(state.codes[c], cols[c]) for c in ("carrier", "origin", "dest")}


def plane_features(cols: Columns, state: FeatureState) -> dict:
    rows = np.array([state.plane_rows.get(t, -1) for t in cols["tailnum"]], dtype=np.intp)
    built, seats, engines, manufacturer = state.plane_table[rows].T
    return {
        "plane_age": np.asarray(cols["year"], dtype=float) - built,
        "seats": seats,
        "engines": engines,
        "manufacturer": manufacturer,
    }


WEATHER_NAMES = tuple(c.name for c in WEATHER)


def weather_features(cols: Columns, state: FeatureState) -> dict:
    readings = np.array([cols[name] for name in WEATHER_NAMES], dtype=float)  # a new array
    wind = readings[WEATHER_NAMES.index("wind_speed")]
    wind[wind > MAX_WIND_SPEED] = np.nan  # EDA-03
    return dict(zip(WEATHER_NAMES, readings, strict=True))


def schedule_features(cols: Columns, state: FeatureState) -> dict:
    return {name: np.asarray(cols[name], dtype=float) for name in ("distance", "hour", "minute")}


def calendar_features(cols: Columns, state: FeatureState) -> dict:
    days = days_since_epoch(cols["year"], cols["month"], cols["day"])
    to_holiday = days_to_holiday(days, state)
    return {
        "day_of_week": ((days + 3) % 7).astype(float),  # 1970-01-01 was a Thursday; Monday=0
        "days_to_holiday": to_holiday,
        "abs_days_to_holiday": np.abs(to_holiday),
    }


STORE_NAMES = tuple(c.name for c in STORE_FIELDS)


def store_features(cols: Columns, state: FeatureState) -> dict:
    """What the feature store knew as of the moment, as sent (missing stays missing)."""
    return {name: np.asarray(cols[name], dtype=float) for name in STORE_NAMES}


Builder = Callable[[Columns, FeatureState], dict]
# Every feature this code can build, by the group that computes it from the request.
GROUPS: tuple[tuple[tuple[str, ...], Builder], ...] = (
    (("carrier", "origin", "dest"), category_features),
    (("plane_age", "seats", "engines", "manufacturer"), plane_features),
    (WEATHER_NAMES, weather_features),
    (("distance", "hour", "minute"), schedule_features),
    (("day_of_week", "days_to_holiday", "abs_days_to_holiday"), calendar_features),
    (STORE_NAMES, store_features),
)
BUILDABLE = frozenset(name for names, _ in GROUPS for name in names)

# What an explanation names (FlightDelayModel.explain): every buildable feature in exactly
# one group, named for a person reading why a flight scored as it did. A feature's
# contribution counts in its group's; a view's age counts with the view's readings.
EXPLANATION_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("the route", ("carrier", "origin", "dest", "distance")),
    ("time of day", ("hour", "minute")),
    ("calendar", ("day_of_week", "days_to_holiday", "abs_days_to_holiday")),
    ("the plane", ("plane_age", "seats", "engines", "manufacturer")),
    ("weather at the origin", (*WEATHER_NAMES, "weather_age_s")),
    ("how far ahead", ("lead_hours",)),
    ("the timetable", ("origin_hour_scheduled", "origin_day_scheduled", "carrier_day_scheduled")),
    (
        "the plane's day",
        ("plane_leg", "plane_turnaround_min", "plane_last_dep_delay", "plane_last_leg_age_s"),
    ),
    (
        "the airport's last two hours",
        (
            *("airport_departed_2h", "airport_mean_delay_2h", "airport_share_delayed_2h"),
            *("airport_overdue_2h", "airport_state_age_s"),
        ),
    ),
)


def group_key(group: str) -> str:
    """An explanation group's name as a metric name may hold it: "the plane's day" ->
    "the_plane_s_day"."""
    return "".join(c if c.isalnum() else "_" for c in group.lower())


def check_buildable(features: Iterable[str], where: str) -> None:
    """UnbuildableFeatures naming the first feature this code cannot build."""
    missing = [name for name in features if name not in BUILDABLE]
    if missing:
        raise UnbuildableFeatures(
            f"{where}: feature '{missing[0]}' cannot be built by this code"
            f" (it builds {sorted(BUILDABLE)})"
        )


def build_features(cols: Columns, state: FeatureState) -> np.ndarray:
    """Raw flight records (REQUEST fields, as columns) -> float matrix of the model's
    features (`state.features`, in order)."""
    feats: dict[str, np.ndarray] = {}
    for build in state.builders:
        feats |= build(cols, state)
    # One (features x rows) array, transposed: cheaper than column_stack for one row.
    return np.ascontiguousarray(np.array([feats[name] for name in state.features], float).T)


def categorical_positions(features: Iterable[str]) -> list[int]:
    """Where the categorical features sit in a feature list (LightGBM's categorical_feature)."""
    return [i for i, name in enumerate(features) if name in CATEGORICAL_FEATURES]


def decode_categories(matrix: np.ndarray, state: FeatureState) -> dict[str, np.ndarray]:
    """Human-readable categorical columns back from codes (for drift reports)."""
    out = {}
    for i in categorical_positions(state.features):
        name, codes = state.features[i], matrix[:, i]
        known = ~np.isnan(codes)
        labels = np.full(len(codes), None, dtype=object)
        labels[known] = state.categories[name][codes[known].astype(int)]
        out[name] = labels
    return out
