"""Features derived inside the model: calendar, holidays, planes, weather cleaning, parity,
and the request columns a frame of flight records becomes."""

from __future__ import annotations

import pickle
from datetime import date

import numpy as np
import pandas as pd
import pytest

from src.common.errors import SchemaError
from src.common.schema import FEATURES, OPTIONAL_FIELDS, REQUEST_FIELDS, STORE_FIELDS, WEATHER
from src.model.features import (
    MANUFACTURERS,
    build_features,
    days_since_epoch,
    days_to_holiday,
    group_manufacturer,
    nearest_holiday,
    request_columns,
    us_federal_holidays,
)

COL = {name: i for i, name in enumerate(FEATURES)}
PLANE_FEATURES = ("plane_age", "seats", "engines", "manufacturer")
STORE_NAMES = tuple(c.name for c in STORE_FIELDS)  # the feature store's, as sent


def request(base: pd.DataFrame, **overrides) -> dict[str, list]:
    """One flight as the API receives it (plain Python values), from a real processed row."""
    row = {c: base[c].iloc[0] for c in REQUEST_FIELDS}
    row = {c: (v.item() if hasattr(v, "item") else v) for c, v in row.items()}
    return {c: [v] for c, v in (row | overrides).items()}


def feature(cols, state, name: str) -> float:
    return build_features(cols, state)[0, COL[name]]


def tail_of(planes: pd.DataFrame, manufacturer: str) -> str:
    return planes.loc[planes["manufacturer"] == manufacturer, "tailnum"].iloc[0]


@pytest.fixture(scope="module")
def holidays() -> np.ndarray:
    return us_federal_holidays()


def test_days_since_epoch_and_day_of_week(processed_slice, feature_state):
    dates = [date(1970, 1, 1), date(2013, 1, 1), date(2013, 11, 28), date(2013, 12, 31)]
    years, months, days = ([getattr(d, a) for d in dates] for a in ("year", "month", "day"))
    expected = [(d - date(1970, 1, 1)).days for d in dates]
    assert days_since_epoch(years, months, days).tolist() == expected

    tuesday = request(processed_slice, year=2013, month=1, day=1)
    assert feature(tuesday, feature_state, "day_of_week") == 1  # Monday = 0
    sunday = request(processed_slice, year=2013, month=11, day=3)
    assert feature(sunday, feature_state, "day_of_week") == 6


def test_thanksgiving_is_zero_days_to_holiday(processed_slice, feature_state):
    cols = request(processed_slice, year=2013, month=11, day=28)
    assert feature(cols, feature_state, "days_to_holiday") == 0
    assert feature(cols, feature_state, "day_of_week") == 3  # a Thursday


def test_nearest_holiday_is_signed(holidays):
    days = days_since_epoch([2013, 2013, 2013], [12, 12, 12], [23, 25, 27])
    # Christmas (Wed 25 Dec) lies 2 days ahead, is today, then lies 2 days behind
    assert nearest_holiday(days, holidays).tolist() == [2.0, 0.0, -2.0]


def test_holiday_table_equals_nearest_holiday_inside_and_outside_its_span(feature_state):
    first, last = feature_state.holidays[0], feature_state.holidays[-1]
    days = np.arange(first - 800, last + 800)  # years before the first holiday and after the last

    np.testing.assert_array_equal(
        days_to_holiday(days, feature_state), nearest_holiday(days, feature_state.holidays)
    )


def test_state_pickles_its_fields_only(processed_slice, feature_state):
    lookups = {"codes", "plane_rows", "plane_table", "holiday_distance"}
    build_features(request(processed_slice), feature_state)  # the lookups exist in the state
    fresh = pickle.loads(pickle.dumps(feature_state))
    assert not lookups & set(vars(fresh))  # models pickle as before the lookups existed

    before = pickle.dumps(fresh)
    built = build_features(request(processed_slice), fresh)

    assert lookups <= set(vars(fresh)) and pickle.dumps(fresh) == before
    np.testing.assert_array_equal(built, build_features(request(processed_slice), feature_state))


def test_manufacturer_grouping_follows_eda_09(raw_slice, processed_slice, feature_state):
    names = np.array(["CANADAIR", "CANADAIR LTD", "AIRBUS INDUSTRIE", "BOEING", "CESSNA"])
    assert group_manufacturer(names).tolist() == [
        "BOMBARDIER",
        "BOMBARDIER",
        "AIRBUS",
        "BOEING",
        "OTHER",
    ]
    planes = raw_slice["planes"]
    tails = [tail_of(planes, "CANADAIR"), tail_of(planes, "AIRBUS INDUSTRIE")]
    tails += [tail_of(planes, "CESSNA"), "N0NEXIST"]
    cols = {c: [v[0]] * 4 for c, v in request(processed_slice).items()}
    cols["tailnum"] = tails

    codes = build_features(cols, feature_state)[:, COL["manufacturer"]]

    known = [MANUFACTURERS.index(m) for m in ("BOMBARDIER", "AIRBUS", "OTHER")]
    assert codes[:3].tolist() == known
    assert np.isnan(codes[3])  # an unknown plane is missing, not OTHER


def test_wind_speed_above_100_is_missing(processed_slice, feature_state):
    assert feature(request(processed_slice, wind_speed=100.0), feature_state, "wind_speed") == 100
    assert np.isnan(
        feature(request(processed_slice, wind_speed=100.1), feature_state, "wind_speed")
    )
    # the real sensor error in weather.csv (EDA-03)
    assert np.isnan(
        feature(request(processed_slice, wind_speed=1048.36), feature_state, "wind_speed")
    )


def test_unseen_categories_are_missing_codes_other_features_kept(processed_slice, feature_state):
    known = build_features(request(processed_slice), feature_state)[0]
    unseen = request(processed_slice, carrier="ZZ", origin="SWF", dest="XXX")

    row = build_features(unseen, feature_state)[0]

    for name in ("carrier", "origin", "dest"):
        assert not np.isnan(known[COL[name]]) and np.isnan(row[COL[name]]), name
    rest = [COL[n] for n in FEATURES if n not in ("carrier", "origin", "dest")]
    np.testing.assert_array_equal(row[rest], known[rest])
    assert not np.isnan(row[[COL["distance"], COL["hour"], COL["day_of_week"]]]).any()


def test_missing_tailnum_gives_missing_plane_features(processed_slice, feature_state):
    with_plane = build_features(request(processed_slice), feature_state)[0]
    no_plane = build_features(request(processed_slice, tailnum=None), feature_state)[0]
    for name in PLANE_FEATURES:
        assert not np.isnan(with_plane[COL[name]]) and np.isnan(no_plane[COL[name]]), name
    assert no_plane[COL["distance"]] == with_plane[COL["distance"]]


def test_one_row_builds_equal_the_batch_build(processed_slice, feature_state):
    flights = processed_slice.sample(200, random_state=0)
    cols = {c: flights[c].to_numpy() for c in REQUEST_FIELDS}

    batch = build_features(cols, feature_state)
    arrays = [
        build_features({c: v[i : i + 1] for c, v in cols.items()}, feature_state)
        for i in range(200)
    ]
    as_json = [request(flights.iloc[[i]]) for i in range(200)]
    lists = [build_features(r, feature_state) for r in as_json]

    np.testing.assert_array_equal(np.vstack(arrays), batch)
    np.testing.assert_array_equal(np.vstack(lists), batch)
    # the sample exercises missing values: planes absent from planes.csv, no gust reading
    assert (
        np.isnan(batch[:, COL["manufacturer"]]).any() and np.isnan(batch[:, COL["wind_gust"]]).any()
    )


def test_build_features_shape_and_column_order(processed_slice, feature_state):
    flights = processed_slice.head(50)
    cols = {c: flights[c].to_numpy() for c in REQUEST_FIELDS}

    X = build_features(cols, feature_state)

    assert X.shape == (50, 36) == (len(flights), len(FEATURES))
    assert X.dtype == np.float64
    assert flights["plane_last_dep_delay"].isna().any()  # missing passes through as missing
    for name in (
        "distance",
        "hour",
        "minute",
        *(c.name for c in WEATHER if c.name != "wind_speed"),
        *STORE_NAMES,
    ):
        np.testing.assert_array_equal(X[:, COL[name]], flights[name].to_numpy(dtype=float), name)
    carriers = feature_state.categories["carrier"]
    assert carriers[X[:, COL["carrier"]].astype(int)].tolist() == flights["carrier"].tolist()
    np.testing.assert_array_equal(
        X[:, COL["abs_days_to_holiday"]], np.abs(X[:, COL["days_to_holiday"]])
    )


# ---------------------------------------------------------------- request_columns
def test_request_columns_takes_the_request_fields_and_ignores_the_rest(processed_slice):
    flights = processed_slice.head(50)  # also holds time_hour and the label

    cols = request_columns(flights)

    assert list(cols) == list(REQUEST_FIELDS)
    for name in REQUEST_FIELDS:
        np.testing.assert_array_equal(cols[name], flights[name].to_numpy(), name)


def test_request_columns_fills_omitted_optional_fields_with_missing(processed_slice):
    flights = processed_slice.head(50).drop(columns=list(OPTIONAL_FIELDS))
    assert set(OPTIONAL_FIELDS) == {"tailnum", *(c.name for c in WEATHER), *STORE_NAMES}

    cols = request_columns(flights)

    assert list(cols) == list(REQUEST_FIELDS)
    for name in OPTIONAL_FIELDS:
        assert len(cols[name]) == 50 and pd.isna(cols[name]).all(), name
    for name in set(REQUEST_FIELDS) - set(OPTIONAL_FIELDS):
        np.testing.assert_array_equal(cols[name], flights[name].to_numpy(), name)


def test_omitted_optional_fields_give_the_features_of_missing_values(
    processed_slice, feature_state
):
    flights = processed_slice.head(50)
    omitted = request_columns(flights.drop(columns=list(OPTIONAL_FIELDS)))
    # what a frame holds when the values are missing: NaN readings, no tail number, nothing
    # from the feature store
    missing = flights.assign(**dict.fromkeys(OPTIONAL_FIELDS, np.nan)).assign(tailnum=None)

    X = build_features(omitted, feature_state)

    np.testing.assert_array_equal(X, build_features(request_columns(missing), feature_state))
    assert np.isnan(X[:, [COL[n] for n in (*PLANE_FEATURES, *STORE_NAMES)]]).all()


@pytest.mark.parametrize("dropped", [["carrier"], ["year", "distance"]])
def test_request_columns_names_missing_required_fields(processed_slice, dropped):
    with pytest.raises(SchemaError, match="required field") as err:
        request_columns(processed_slice.head(5).drop(columns=dropped))
    assert str(dropped) in str(err.value)


def test_a_year_outside_the_calendar_table_is_refused_not_wrapped():
    """The pyfunc path has no bounds check of its own: 1969 must not read as a 2100 date."""
    with pytest.raises(SchemaError, match="1969"):
        days_since_epoch([1969], [12], [1])
    assert days_since_epoch([1970, 2100], [1, 12], [1, 31]).tolist() == [0, 47846]
