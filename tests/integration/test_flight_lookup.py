"""Finding a flight by carrier, number and New York date in the online store, and the
request record built for it (src/featurestore/flights.py), on the smoke snapshot's real
2013 rows, on SQLite and on Redis: the departures a date holds are the raw flights' of that
local date as far as the timetable is published at the clock; the record of a flight equals
its raw schedule plus the offline as-of join at the clock; the flights the API must refuse
(unknown, two origins, left, due and not left, an empty store) are refused. Then the SQLite
store across threads and both stores' failed opening. Redis runs in a redis-server of the
module's own on loopback (slow)."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import date

import pandas as pd
import pytest
import redis

from src.common.errors import PipelineError
from src.common.schema import API_REQUEST_FIELDS, STORE_FIELDS
from src.common.servers import free_port
from src.featurestore import online_sqlite
from src.featurestore.flights import FlightConflict, FlightNotFound, flight_features
from src.featurestore.offline import as_of
from src.featurestore.online import OnlineStore, StoreUnavailable, feed, lookup
from src.featurestore.online_redis import RedisStore
from src.featurestore.online_sqlite import SQLiteStore
from src.featurestore.views import FEATURE_VIEWS, PUBLISHED_AHEAD, VIEWS, scheduled_departure
from tests.integration.redis_support import redis_server

CLOCK = pd.Timestamp("2013-08-15T12:00Z")
START = pd.Timestamp("2013-08-06T00:00Z")  # the feed's first events: a window, not the year
BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.slow)]
LOCAL_DATE = ["year", "month", "day"]


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        yield url


def open_backend(request, backend: str, path, db: int = 1) -> OnlineStore:
    """A store of `backend`: the SQLite file `path`, or the module's Redis, database `db`
    emptied (the module's fed store keeps database 0)."""
    if backend == "sqlite":
        return SQLiteStore(path)
    url = request.getfixturevalue("redis_url").rsplit("/", 1)[0]
    store = RedisStore(f"{url}/{db}")
    store.redis.flushdb()
    return store


@pytest.fixture(scope="module", params=BACKENDS)
def fed(request, views, tmp_path_factory):
    """A store of each backend fed with the events of START..CLOCK."""
    path = tmp_path_factory.mktemp("online") / "online.sqlite"
    with open_backend(request, request.param, path, db=0) as store:
        feed(store, views, start=START, until=CLOCK)
        yield store


@pytest.fixture(scope="module")
def flights(raw) -> pd.DataFrame:
    f = raw["flights"]
    sched = scheduled_departure(f)
    return f.assign(sched_dep=sched, published=sched - PUBLISHED_AHEAD)


def in_store(flights: pd.DataFrame) -> pd.DataFrame:
    """The flights whose timetable row the store holds at CLOCK."""
    return flights[flights["published"].between(START, CLOCK)]


def test_a_date_holds_the_raw_flights_of_that_new_york_date_published_by_the_clock(fed, flights):
    """Every (carrier, number) of four local dates: the day of the clock, a week on (its
    timetable published only up to CLOCK + 7 days: the morning), a date past it, and UA 236
    of 15 August, which leaves JFK at 06:30 and EWR at 20:00, 00:00 UTC the next day."""
    dates = [date(2013, 8, 15), date(2013, 8, 21), date(2013, 8, 22), date(2013, 8, 23)]
    published = in_store(flights)
    found = {}
    for day in dates:
        local = flights[(flights[LOCAL_DATE] == [day.year, day.month, day.day]).all(axis=1)]
        found[day] = [0, len(local)]
        for (carrier, number), rows in local.groupby(["carrier", "flight"]):
            expected = published.loc[published.index.intersection(rows.index)]
            want = sorted(zip(expected["sched_dep"].map(ns), expected["origin"], strict=True))
            got = fed.departures_on(carrier, number, day, ns(CLOCK))
            assert [(s, o) for o, s in got] == want, (carrier, number, day)
            found[day][0] += len(got)
    found = list(found.values())
    assert found[0][0] == found[0][1] > 900 and found[1][0] == found[1][1] > 900
    assert 100 < found[2][0] < found[2][1] - 500 and found[3][0] == 0  # 22 August: until 8 am
    two = fed.departures_on("UA", 236, date(2013, 8, 15), ns(CLOCK))
    assert two == [("JFK", ns("2013-08-15T10:30Z")), ("EWR", ns("2013-08-16T00:00Z"))]
    # Published a week ahead: JFK's at 10:30 UTC on 8 August, EWR's at 00:00 on the 9th.
    assert fed.departures_on("UA", 236, date(2013, 8, 15), ns("2013-08-08T10:29Z")) == []
    assert fed.departures_on("UA", 236, date(2013, 8, 15), ns("2013-08-08T10:30Z")) == two[:1]


def test_the_record_of_a_flight_is_its_schedule_and_the_offline_join_at_the_clock(
    fed, flights, views
):
    """80 flights due in the next 1-30 hours: the record's local schedule is the raw one
    (the date the passenger gave), its features the offline as-of join's at CLOCK on the
    events the store was fed."""
    due = in_store(flights)
    soon = due["sched_dep"].between(CLOCK + pd.Timedelta(hours=1), CLOCK + pd.Timedelta(hours=30))
    due = due[soon].sample(80, random_state=24)
    keys = due[["carrier", "flight", "origin", "sched_dep"]].reset_index(drop=True)
    fed_tables = {  # what the store was fed: the events from START on
        name: table[table[VIEWS[name].event_time] >= START] for name, table in views.items()
    }
    offline = as_of(keys.assign(as_of=CLOCK), fed_tables).drop(columns=["as_of", "sched_dep"])
    for i, flight in enumerate(due.itertuples()):
        day = date(flight.year, flight.month, flight.day)
        got = flight_features(fed, flight.carrier, flight.flight, day, flight.origin)
        lead = (flight.sched_dep - CLOCK) / pd.Timedelta(hours=1)
        assert got.sched_dep == flight.sched_dep and got.as_of == CLOCK
        assert got.lead_hours == lead and got.record["lead_hours"] == lead
        assert list(got.record) == list(API_REQUEST_FIELDS)
        for name in ("year", "month", "day", "hour", "minute"):
            assert got.record[name] == getattr(flight, name), (i, name)
        for name, expected in offline.iloc[i].items():
            view = name.removesuffix("_age_s")
            value = got.ages_s[view] if view in FEATURE_VIEWS else got.record[name]
            if pd.isna(expected):
                assert value is None, (i, name, value)
            elif isinstance(expected, str):
                assert value == expected, (i, name, value)
            else:
                assert value == pytest.approx(expected, abs=1e-9), (i, name, value)
    # The comparison covers what matters: the store's fields, known and missing.
    stored = [c.name for c in STORE_FIELDS if c.name in offline]
    assert offline[stored].notna().any().all() and offline[stored].isna().any().any()


def test_the_flights_that_cannot_be_scored_are_refused_naming_what_was_asked(fed, flights):
    day = date(2013, 8, 15)
    with pytest.raises(FlightNotFound, match="no flight UA 9999 on 2013-08-15 in the timet"):
        flight_features(fed, "UA", 9999, day)
    with pytest.raises(FlightNotFound, match="UA 236 on 2013-08-15 from LGA"):
        flight_features(fed, "UA", 236, day, "LGA")
    with pytest.raises(FlightNotFound, match="UA 236 on 2013-08-29"):  # not published yet
        flight_features(fed, "UA", 236, date(2013, 8, 29))
    with pytest.raises(FlightConflict, match="from JFK at 06:30 and from EWR at 20:00") as two:
        flight_features(fed, "UA", 236, day)
    assert two.value.details == {"origins": ["JFK", "EWR"]}
    assert flight_features(fed, "UA", 236, day, "EWR").record["origin"] == "EWR"
    with pytest.raises(FlightConflict, match=r"left at 2013-08-15T10:26:00Z \(-4 m") as left:
        flight_features(fed, "UA", 236, day, "JFK")
    assert left.value.details == {"departed": "2013-08-15T10:26:00Z", "dep_delay": -4.0}
    # Due before the clock, not left by it: one late, one cancelled (no departure at all).
    f = in_store(flights)
    departed = f["sched_dep"] + pd.to_timedelta(f["dep_delay"], unit="min")
    overdue = f[(f["sched_dep"] < CLOCK) & (departed > CLOCK)]
    cancelled = f[(f["sched_dep"] < CLOCK) & f["dep_delay"].isna()]
    for flight in (overdue.iloc[0], cancelled.iloc[-1]):
        day = date(flight["year"], flight["month"], flight["day"])
        with pytest.raises(FlightConflict, match="has not left by the store's clock"):
            flight_features(fed, flight["carrier"], flight["flight"], day, flight["origin"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_empty_store_is_unavailable(request, backend, tmp_path):
    store = open_backend(request, backend, tmp_path / "online.sqlite")
    with store, pytest.raises(StoreUnavailable, match="empty: run `python -m src.feed` first"):
        flight_features(store, "UA", 236, date(2013, 8, 15))


def test_the_departure_view_is_never_a_feature(views, flights, tmp_path):
    """The store holds each flight's departure for the API; neither the offline join that
    makes training examples nor the online lookup reads it."""
    assert VIEWS["departure"].feature is False and "departure" not in FEATURE_VIEWS
    keys = in_store(flights)[["carrier", "flight", "origin", "sched_dep"]].head(50)
    examples = keys.assign(as_of=keys["sched_dep"] + pd.Timedelta(hours=1))  # after they left
    joined = as_of(examples, views)
    assert not {"dep_delay", "departure_age_s"} & set(joined.columns)
    with SQLiteStore(tmp_path / "online.sqlite") as store:
        feed(store, {"departure": views["departure"]}, until=CLOCK)
        got = lookup(store, keys.iloc[0].to_dict())
        assert not {"dep_delay", "departure_age_s"} & set(got)
        assert store.read("departure", list(keys.iloc[0]))["dep_delay"] is not None


# ------------------------------------------------------------------ opening and threads
def test_one_sqlite_store_serves_the_threads_of_a_process(views, tmp_path):
    """The API opens the store once and reads it from FastAPI's thread pool."""
    with SQLiteStore(tmp_path / "online.sqlite") as store:
        feed(store, views, start=START, until=CLOCK)
        expected = flight_features(store, "UA", 236, date(2013, 8, 15), "EWR").record
        with ThreadPoolExecutor(4) as pool:
            got = list(
                pool.map(
                    lambda _: flight_features(store, "UA", 236, date(2013, 8, 15), "EWR").record,
                    range(40),
                )
            )
        assert got == [expected] * 40


def test_a_store_that_fails_its_checks_closes_its_connection(tmp_path, monkeypatch):
    path = tmp_path / "online.sqlite"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute('CREATE TABLE "weather" (origin TEXT PRIMARY KEY, time_hour INTEGER)')
    opened, connect = [], sqlite3.connect

    def connect_and_keep(*args, **kwargs):
        opened.append(connect(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(online_sqlite.sqlite3, "connect", connect_and_keep)
    with pytest.raises(PipelineError, match="table 'weather' has columns"):
        SQLiteStore(path)
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[-1].execute("SELECT 1")

    # The client is held here, so only an explicit close() can close it (not its __del__).
    clients, closed = [], []
    from_url, close = redis.Redis.from_url, redis.Redis.close

    def from_url_and_keep(url: str, **kwargs) -> redis.Redis:
        clients.append(from_url(url, **kwargs))
        return clients[-1]

    def close_and_note(self: redis.Redis) -> None:
        closed.append(self)
        close(self)

    monkeypatch.setattr(redis.Redis, "from_url", from_url_and_keep)
    monkeypatch.setattr(redis.Redis, "close", close_and_note)
    with pytest.raises(PipelineError, match="cannot reach Redis"):
        RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    assert closed == clients and len(clients) == 1
    clients.clear(), closed.clear()


def test_a_sqlite_store_fed_before_the_departure_view_is_refused(tmp_path):
    """Its feed would resume after the clock: the departures before it would be missing."""
    path = tmp_path / "online.sqlite"
    with SQLiteStore(path) as store:
        store.advance(CLOCK)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute('DROP TABLE "departure"')
    with pytest.raises(PipelineError, match=r"fed before the view\(s\) \['departure'\]"):
        SQLiteStore(path)


def ns(moment) -> int:
    return pd.Timestamp(moment).value
