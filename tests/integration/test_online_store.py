"""The online store on both backends, with the views built from the smoke pipeline's raw
snapshot (all of 2013). The skew test: fed up to a moment, the store gives ~200 flights due
in the next 1-6 hours exactly the features the offline as-of join gives them at that moment.
Then, on real rows: the weather's time-to-live, events arriving out of order, the clock
kept across reopening, and the stage run as a user runs it. Redis runs in a redis-server of
the module's own on loopback (slow: a server in a subprocess)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from src import feed as feed_stage
from src.featurestore.offline import as_of, write_views
from src.featurestore.online import OnlineStore, feed, lookup
from src.featurestore.online_redis import RedisStore
from src.featurestore.online_sqlite import SQLiteStore
from src.featurestore.views import VIEWS
from tests.conftest import make_paths
from tests.integration.redis_support import redis_server

# 7 am local on the hour (a weather reading and the state change at that very moment), then
# a late morning off the minute: a replay stops anywhere.
MOMENTS = [pd.Timestamp("2013-01-09T12:00:00Z"), pd.Timestamp("2013-01-17T15:37:30Z")]
BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        yield url


def open_backend(request, backend: str, tmp_path, empty: bool = True) -> OnlineStore:
    """A store of `backend`: the SQLite file under `tmp_path`, or the module's Redis
    (emptied unless `empty` is False)."""
    if backend == "sqlite":
        return SQLiteStore(tmp_path / "online.sqlite")
    store = RedisStore(request.getfixturevalue("redis_url"))
    if empty:
        store.redis.flushdb()
    return store


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    with open_backend(request, request.param, tmp_path) as s:
        yield s


def due_flights(raw: dict, moment: pd.Timestamp, n: int = 200) -> pd.DataFrame:
    """A sample of the flights scheduled to leave 1 to 6 hours after `moment`."""
    f = raw["flights"]
    sched = f["time_hour"] + pd.to_timedelta(f["minute"], unit="min")
    keys = f[["carrier", "flight", "origin"]].assign(sched_dep=sched)
    due = keys[
        (sched >= moment + pd.Timedelta(hours=1)) & (sched <= moment + pd.Timedelta(hours=6))
    ]
    assert len(due) >= n, f"only {len(due)} flights due after {moment}"
    return due.sample(n, random_state=24).reset_index(drop=True)


def assert_same(online: dict, offline: pd.Series, where: str) -> None:
    """Numbers to 1e-9, strings (and the flight's own keys) exactly, missing on both sides."""
    for column, expected in offline.items():
        got = online[column]
        if pd.isna(expected):
            assert got is None, f"{where} {column}: online {got!r}, offline missing"
        elif isinstance(expected, str | pd.Timestamp):
            assert got == expected, f"{where} {column}: online {got!r}, offline {expected!r}"
        else:
            assert got is not None, f"{where} {column}: online missing, offline {expected!r}"
            assert abs(got - expected) <= 1e-9, f"{where} {column}: {got!r} != {expected!r}"


def test_online_features_equal_the_offline_as_of_row_at_a_replayed_moment(store, raw, views):
    """Fed up to each moment in turn (the second feed resumes after the first), the store's
    features of 200 flights due 1-6 h later equal `as_of` at that moment, every view and
    age included."""
    for moment in MOMENTS:
        feed(store, views, until=moment)
        assert store.clock == moment
        flights = due_flights(raw, moment)
        offline = as_of(flights.assign(as_of=moment), views).drop(columns="as_of")
        for i, flight in flights.iterrows():
            assert_same(lookup(store, flight.to_dict()), offline.loc[i], f"{moment} flight {i}")
        # The comparison covers what matters: planes seen, stale ones, the airport busy.
        assert offline["timetable_age_s"].notna().all()
        assert offline["plane_last_dep_delay"].notna().sum() > 50
        stale = offline["plane_last_leg_age_s"] > VIEWS["plane_last_leg"].ttl.total_seconds()
        assert stale.any() and offline.loc[stale, "plane_last_dep_delay"].isna().all()
        assert (offline["airport_departed_2h"] > 0).any()


def test_a_weather_row_older_than_three_hours_at_the_clock_reads_missing(store, views):
    weather = views["weather"]
    rows = weather[(weather["origin"] == "JFK") & (weather["observed"] <= "2013-07-04T15:00Z")]
    last = rows.iloc[-1]
    store.apply("weather", rows)
    store.advance(last["observed"] + pd.Timedelta(hours=3))
    assert store.read("weather", ["JFK"])["temp"] == last["temp"]
    store.advance(last["observed"] + pd.Timedelta(hours=3, seconds=1))
    got = store.read("weather", ["JFK"])
    assert got["temp"] is None and got["pressure"] is None and got["weather_age_s"] == 10801.0


def test_an_older_event_never_overwrites_a_newer_one(store, views):
    """A day of the airport state applied newest first, 50 events per write (late events in
    one batch and across batches): each origin keeps its latest row."""
    state = views["airport_state"]
    day = state[state["at"].between("2013-05-01T10:00Z", "2013-05-02T10:00Z")]
    newest_first = day.iloc[::-1]
    for start in range(0, len(day), 50):
        store.apply("airport_state", newest_first.iloc[start : start + 50])
    store.advance(day["at"].max())
    for origin, rows in day.groupby("origin"):
        latest = rows.iloc[-1]
        got = store.read("airport_state", [origin])
        assert got["airport_departed_2h"] == latest["airport_departed_2h"]
        assert got["airport_state_age_s"] == (day["at"].max() - latest["at"]).total_seconds()


def test_numbers_come_back_exactly_and_missing_stays_missing(store, views):
    """A day of the airport state: means such as 779/17 and shares, bit for bit, and the
    empty windows' missing means."""
    state = views["airport_state"]
    day = state[state["at"].between("2013-05-01T10:00Z", "2013-05-02T10:00Z")]
    means = day["airport_mean_delay_2h"]
    sample = day[(np.arange(len(day)) % 40 == 0) | means.isna()]
    assert means.isna().any() and (means % 1 > 0).any()  # empty windows, and fractions
    for i in range(len(sample)):
        row = sample.iloc[i]
        store.apply("airport_state", sample.iloc[[i]])
        store.advance(row["at"])
        got = store.read("airport_state", [row["origin"]])
        for name in VIEWS["airport_state"].field_names:
            assert got[name] == row[name] or (got[name] is None and pd.isna(row[name])), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_clock_persists_across_reopening_and_never_goes_back(request, backend, tmp_path):
    with open_backend(request, backend, tmp_path) as store:
        store.advance("2013-07-04T15:00Z")
        store.advance("2013-07-04T14:00Z")  # never back
    with open_backend(request, backend, tmp_path, empty=False) as store:
        assert store.clock == pd.Timestamp("2013-07-04T15:00Z")


@pytest.mark.slow
def test_the_stage_feeds_the_sqlite_store_and_resumes_after_its_clock(
    raw, views, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.INFO)
    paths = make_paths(tmp_path)
    monkeypatch.setenv("FD_DATA_DIR", str(paths.data))
    write_views(paths, views, raw["_manifest"])
    assert feed_stage.main(["--until", "2013-01-31T12:00"]) == 0
    assert "clock 2013-01-31 12:00:00+00:00" in caplog.text
    caplog.clear()
    assert feed_stage.main(["--until", "2013-02-01"]) == 0
    assert "applied 0 events" not in caplog.text
    with SQLiteStore(paths.online_store) as store:
        assert store.clock == pd.Timestamp("2013-02-01T00:00Z")
        state = views["airport_state"]
        last = state[(state["origin"] == "EWR") & (state["at"] <= store.clock)].iloc[-1]
        assert (
            store.read("airport_state", ["EWR"])["airport_departed_2h"]
            == last["airport_departed_2h"]
        )
    caplog.clear()
    assert feed_stage.main(["--until", "2013-02-01"]) == 0
    assert "applied 0 events" in caplog.text
