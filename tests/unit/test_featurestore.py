"""The feature views and the offline store on small hand-made days: as-of lookups (latest
row at or before the moment, never a later one), time-to-live, the airport state's exact
window, the plane's legs, and the store's files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.common.errors import PipelineError
from src.common.io import read_json, sha256_file
from src.common.schema import WEATHER
from src.featurestore.offline import (
    as_of,
    build_view,
    build_views,
    join_view,
    load_views,
    write_views,
)
from src.featurestore.views import AIRPORT_STATE, TIMETABLE, VIEWS

UTC = "UTC"


def flights(*rows: tuple) -> pd.DataFrame:
    """Raw flights from (carrier, flight, tailnum, origin, local scheduled time, dep_delay),
    with the raw table's derived columns: local date and hour, UTC `time_hour`."""
    cols = ["carrier", "flight", "tailnum", "origin", "local", "dep_delay"]
    df = pd.DataFrame(rows, columns=cols)
    local = pd.to_datetime(df.pop("local"))
    utc_hour = local.dt.floor("h").dt.tz_localize("America/New_York").dt.tz_convert(UTC)
    return df.assign(
        year=local.dt.year,
        month=local.dt.month,
        day=local.dt.day,
        hour=local.dt.hour,
        minute=local.dt.minute,
        time_hour=utc_hour.dt.as_unit("ns"),
        dest="ORD",
        distance=719,
        dep_delay=df["dep_delay"].astype("float64"),
    )


def weather(*rows: tuple) -> pd.DataFrame:
    """Raw weather from (origin, UTC hour, temp); the other readings fixed."""
    df = pd.DataFrame(rows, columns=["origin", "time_hour", "temp"])
    df["time_hour"] = pd.to_datetime(df["time_hour"], utc=True).dt.as_unit("ns")
    return df.assign(**{c.name: 1.0 for c in WEATHER if c.name != "temp"})


def at(*moments: str) -> pd.DatetimeIndex:
    return pd.to_datetime(list(moments), utc=True, format="ISO8601").as_unit("ns")


def lookup(view_name: str, raw: dict, examples: pd.DataFrame) -> pd.DataFrame:
    return as_of(examples, {view_name: build_view(VIEWS[view_name], raw)})


# ------------------------------------------------------------------ as-of and ttl
WEATHER_RAW = {
    "weather": weather(
        ("EWR", "2013-03-05 10:00", 30.0),
        ("EWR", "2013-03-05 11:00", 31.0),
        ("EWR", "2013-03-05 12:00", 32.0),
        ("JFK", "2013-03-05 11:00", 50.0),
    )
}


def test_as_of_takes_the_latest_row_at_or_before_the_moment_never_a_later_one():
    """A weather row of hour H is known from H+1 (views.OBSERVATION_DELAY)."""
    moments = ["2013-03-05 12:00", "2013-03-05 12:59:59", "2013-03-05 10:59", "2013-03-05 12:30"]
    examples = pd.DataFrame({"origin": ["EWR", "EWR", "EWR", "JFK"], "as_of": at(*moments)})
    got = lookup("weather", WEATHER_RAW, examples)
    assert got["temp"].tolist()[:2] == [31.0, 31.0]  # not 12:00's 32.0
    assert np.isnan(got["temp"][2]) and np.isnan(got["weather_age_s"][2])  # nothing yet
    assert got["temp"][3] == 50.0  # its own origin's row
    assert got["weather_age_s"].tolist()[:2] == [0.0, 3599.0]


def test_a_weather_row_is_not_known_before_its_hour_has_passed():
    """Hour H's row holds a report made within H: at 11:30 the 11:00 row is still to come."""
    examples = pd.DataFrame({"origin": "EWR", "as_of": at("2013-03-05 11:30")})
    got = lookup("weather", WEATHER_RAW, examples)
    assert got["temp"].tolist() == [30.0] and got["weather_age_s"].tolist() == [1800.0]


def test_as_of_keeps_row_order_and_index_and_skips_rows_without_entity():
    examples = pd.DataFrame(
        {"origin": ["JFK", None, "EWR"], "as_of": at(*["2013-03-05 13:30"] * 3)},
        index=[7, 3, 5],
    )
    got = lookup("weather", WEATHER_RAW, examples)
    assert got.index.tolist() == [7, 3, 5]
    assert got["origin"].tolist() == ["JFK", None, "EWR"]
    assert got["temp"].tolist()[::2] == [50.0, 32.0] and np.isnan(got["temp"][3])


def test_a_value_older_than_the_ttl_is_missing_never_current():
    """Weather's ttl is 3 hours: at exactly 3 hours the reading holds, a second later it is
    missing, and its age still says how old it was (from 12:00, when 11:00's row was known)."""
    examples = pd.DataFrame(
        {"origin": "JFK", "as_of": at("2013-03-05 15:00", "2013-03-05 15:00:01")}
    )
    got = lookup("weather", WEATHER_RAW, examples)
    assert got["temp"][0] == 50.0 and np.isnan(got["temp"][1])
    assert got["weather_age_s"].tolist() == [10800.0, 10801.0]


def test_the_weather_lookup_follows_utc_across_the_dst_fall_back(raw_slice):
    """EDA-02 on the real weather: on 3 November 2013 EWR's local 01:00 came twice (EDT, then
    EST), so two raw rows share the local hour 1. On the one UTC clock each is known an hour
    after its own hour, in turn, and ages count real seconds through the change of clock."""
    weather = raw_slice["weather"]
    ewr = weather[weather["origin"].eq("EWR")]
    one_am = ewr[ewr["month"].eq(11) & ewr["day"].eq(3) & ewr["hour"].eq(1)]
    assert one_am["time_hour"].tolist() == list(at("2013-11-03 05:00", "2013-11-03 06:00"))
    edt, est = one_am["temp"].tolist()
    assert edt != est  # the two readings really differ
    moments = ["2013-11-03 06:00", "2013-11-03 06:59", "2013-11-03 07:00", "2013-11-03 07:30"]
    examples = pd.DataFrame({"origin": "EWR", "as_of": at(*moments)})

    got = lookup("weather", {"weather": weather}, examples)

    assert got["temp"].tolist() == [edt, edt, est, est]
    assert got["weather_age_s"].tolist() == [0.0, 3540.0, 0.0, 1800.0]


PLANE_VIEWS = ("timetable", "plane_last_leg")


def test_the_timetable_is_known_a_week_ahead_and_names_the_plane_for_the_plane_view():
    raw = {
        "flights": flights(
            ("UA", 1, "N1", "EWR", "2013-03-05 07:00", 20),
            ("UA", 2, "N1", "EWR", "2013-03-05 10:00", 5),
        )
    }
    sched = at("2013-03-05 15:00")[0]  # 10:00 local (EST)
    moments = [sched - pd.Timedelta(days=7, seconds=1), sched - pd.Timedelta(hours=2)]
    examples = pd.DataFrame(
        {"carrier": "UA", "flight": 2, "origin": "EWR", "sched_dep": sched, "as_of": moments}
    )
    got = as_of(examples, {name: build_view(VIEWS[name], raw) for name in PLANE_VIEWS})
    assert got["tailnum"].isna().tolist() == [True, False]
    assert np.isnan(got["plane_last_dep_delay"][0])  # no plane known: no plane lookup
    # Flight 1 left at 12:20 UTC, 40 minutes before the moment.
    assert got["plane_last_dep_delay"][1] == 20.0 and got["plane_last_leg_age_s"][1] == 2400.0


def test_plane_last_leg_ttl_is_twelve_hours():
    raw = {"flights": flights(("UA", 1, "N1", "EWR", "2013-03-05 07:00", 0))}  # 12:00 UTC
    examples = pd.DataFrame(
        {"tailnum": "N1", "as_of": at("2013-03-06 00:00", "2013-03-06 00:00:01")}
    )
    got = lookup("plane_last_leg", raw, examples)
    assert got["plane_last_dep_delay"][0] == 0.0 and np.isnan(got["plane_last_dep_delay"][1])


def test_bad_examples_get_one_line_naming_the_column():
    examples = pd.DataFrame({"origin": ["EWR"], "as_of": pd.to_datetime(["2013-03-05 11:00"])})
    with pytest.raises(PipelineError, match="column 'as_of' must be UTC datetimes"):
        lookup("weather", WEATHER_RAW, examples)
    with pytest.raises(PipelineError, match=r"no column \['origin'\] for the view 'weather'"):
        lookup("weather", WEATHER_RAW, pd.DataFrame({"as_of": at("2013-03-05 11:00")}))


def test_field_names_are_unique_across_views_and_name_no_key():
    fields = [name for view in VIEWS.values() for name in view.field_names]
    keys = {k for view in VIEWS.values() for k in (*view.entities, view.event_time)}
    assert len(fields) == len(set(fields))
    assert not (set(fields) - {"tailnum"}) & keys  # the timetable's plane keys the plane view


# ------------------------------------------------------------------ the airport state
DEPARTURES = flights(
    ("UA", 1, "N1", "EWR", "2013-03-05 06:00", -3),
    ("UA", 2, "N2", "EWR", "2013-03-05 06:00", 30),  # leaves with flight 5, same minute
    ("B6", 3, "N3", "EWR", "2013-03-05 06:10", np.nan),  # cancelled: never leaves
    ("B6", 4, "N4", "EWR", "2013-03-05 07:00", 15),  # exactly 15: counts as delayed
    ("AA", 5, "N5", "EWR", "2013-03-05 06:25", 5),
    ("AA", 6, "N6", "JFK", "2013-03-05 06:40", 100),  # another origin
    ("UA", 7, "N7", "EWR", "2013-03-05 08:30", 0),  # as flights 2 and 5 exit the window
    ("UA", 8, "N8", "EWR", "2013-03-05 11:00", 2),  # after an empty window
)


def brute_force_state(raw_flights: pd.DataFrame, origin: str, moment: pd.Timestamp) -> tuple:
    """Count, mean delay and share >= 15 of the departures from `origin` in (t - 2h, t],
    and the flights due there in (t - 2h, t] that had not left by t."""
    f = raw_flights[raw_flights["origin"] == origin]
    sched = f["time_hour"] + pd.to_timedelta(f["minute"], unit="min")
    left = sched + pd.to_timedelta(f["dep_delay"], unit="min")  # NaT: cancelled
    two_hours = pd.Timedelta(hours=2)
    overdue = int(((sched > moment - two_hours) & (sched <= moment) & ~(left <= moment)).sum())
    delays = f.loc[(left > moment - two_hours) & (left <= moment), "dep_delay"]
    if delays.empty:
        return 0, np.nan, np.nan, overdue
    return len(delays), delays.mean(), (delays >= 15).mean(), overdue


def test_airport_state_is_exact_at_every_moment_between_and_at_events():
    """Every 30 s over the day, so each departure's entry and two-hour exit is hit exactly
    and between."""
    moments = pd.date_range("2013-03-05 10:30", "2013-03-05 18:30", freq="30s", tz=UTC)
    examples = pd.DataFrame(
        {"origin": np.repeat(["EWR", "JFK"], len(moments)), "as_of": np.tile(moments, 2)}
    )
    got = lookup("airport_state", {"flights": DEPARTURES}, examples)
    expected = [brute_force_state(DEPARTURES, o, t) for o, t in examples.to_numpy()]
    expected = pd.DataFrame(expected, columns=AIRPORT_STATE.field_names)
    got = got[AIRPORT_STATE.field_names].fillna({"airport_departed_2h": 0, "airport_overdue_2h": 0})
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, atol=1e-12)
    assert got["airport_departed_2h"].max() == 4  # the window really fills and empties
    assert got["airport_overdue_2h"].max() == 3  # flights 2, 3 and 5 are due, not left, at 06:25


# ------------------------------------------------------------------ the plane's day
def test_leg_numbers_and_turnarounds_follow_the_plane_through_its_local_day():
    raw = {
        "flights": flights(
            ("UA", 10, "N1", "EWR", "2013-03-05 14:00", 0),
            ("UA", 11, "N1", "LGA", "2013-03-05 06:00", 0),
            ("UA", 12, "N1", "EWR", "2013-03-04 23:30", 0),  # the day before
            ("UA", 13, "N1", "JFK", "2013-03-05 09:30", np.nan),  # cancelled: still scheduled
            ("B6", 14, "N2", "EWR", "2013-03-05 14:59", 0),
            ("B6", 15, None, "EWR", "2013-03-05 14:10", np.nan),  # no plane named
            ("UA", 16, "N1", "EWR", "2013-03-06 00:05", 0),  # the next local day
        )
    }
    table = build_view(TIMETABLE, raw).set_index("flight").sort_index()
    assert table["plane_leg"].drop(15).tolist() == [3, 1, 1, 2, 1, 1]
    assert np.isnan(table.at[15, "plane_leg"])
    gaps = table["plane_turnaround_min"].tolist()
    assert (
        gaps[0] == 270.0 and gaps[3] == 210.0 and np.isnan([gaps[i] for i in (1, 2, 4, 5, 6)]).all()
    )
    assert table.loc[[10, 14, 15], "origin_hour_scheduled"].tolist() == [3, 3, 3]
    assert table.at[10, "origin_day_scheduled"] == 3 and table.at[10, "carrier_day_scheduled"] == 1


# ------------------------------------------------------------------ the store's files
def test_write_views_records_each_file_checksum_and_load_views_reads_them_back(paths):
    raw = {"flights": DEPARTURES, "weather": WEATHER_RAW["weather"]}
    tables = build_views(raw)
    manifest = write_views(paths, tables, {"snapshot": "s", "snapshot_sha256": "abc"})
    assert read_json(paths.features_manifest) == manifest
    for name, entry in manifest["views"].items():
        assert entry["sha256"] == sha256_file(paths.features_file(name))
        assert entry["fields"] == VIEWS[name].field_names
    for name, table in load_views(paths).items():
        pd.testing.assert_frame_equal(table, tables[name])
    # A file written before a view's declaration changed is refused, not half read.
    tables["weather"].rename(columns={"observed": "time_hour"}).to_parquet(
        paths.features_file("weather")
    )
    with pytest.raises(PipelineError, match=r"weather.parquet: columns .* the view declares"):
        load_views(paths)


def test_join_view_refuses_a_frame_not_indexed_by_position():
    """Its values go back by position: any other index would misplace them silently."""
    frame = pd.DataFrame(
        {"origin": ["EWR", "JFK"], "as_of": pd.to_datetime(["2013-01-01", "2013-01-02"], utc=True)},
        index=[5, 5],
    )
    with pytest.raises(PipelineError, match="indexed 0..n-1"):
        join_view(frame, AIRPORT_STATE, pd.DataFrame(columns=AIRPORT_STATE.columns), "as_of")
