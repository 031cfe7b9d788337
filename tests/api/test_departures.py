"""GET /departures/{origin}: an airport's departures board, on the smoke snapshot's real rows
fed to the online store up to 15 August 2013, 12:00 UTC (8 am in New York), as
tests/api/test_flights.py feeds it. EWR from 05:00 to 11:00 New York time holds every
status: flights gone by the clock, one due and not gone (overdue), four gone early though
scheduled after the clock, and the rest still to leave, which the smoke champion scores."""

from __future__ import annotations

import contextlib
from contextlib import closing

import numpy as np
import pandas as pd
import pytest
import redis

from src.featurestore.online import feed
from src.featurestore.online_redis import RedisStore
from src.featurestore.online_sqlite import SQLiteStore
from src.featurestore.views import NEW_YORK, PUBLISHED_AHEAD, scheduled_departure
from src.serving.prediction_log import read_log
from tests.api import test_flights as flights_tests
from tests.api.support import CFG
from tests.api.test_flights import CLOCK, client_on
from tests.integration.redis_support import redis_server

# GET /flights' fixtures: the same raw rows, the store fed from them, the app reading it.
raw, fed_tables = flights_tests.raw, flights_tests.fed_tables
data_dir, client = flights_tests.data_dir, flights_tests.client

BOARD = "/departures/EWR?start=05:00"  # 09:00 to 15:00 UTC
WINDOW = (pd.Timestamp("2013-08-15T09:00Z"), pd.Timestamp("2013-08-15T15:00Z"))


def expected_board(raw: dict, origin: str, low: pd.Timestamp, high: pd.Timestamp):
    """The raw flights from `origin` scheduled in [low, high) and published by the clock,
    in the board's order, with the status each has at the clock."""
    f = raw["flights"].assign(sched_dep=scheduled_departure(raw["flights"]))
    f = f[(f["origin"] == origin) & (f["sched_dep"] >= low) & (f["sched_dep"] < high)]
    f = f[f["sched_dep"] - PUBLISHED_AHEAD <= CLOCK]
    left = f["sched_dep"] + pd.to_timedelta(f["dep_delay"], unit="min") <= CLOCK
    status = np.where(left, "departed", np.where(f["sched_dep"] < CLOCK, "overdue", "scheduled"))
    return f.assign(status=status).sort_values(["sched_dep", "carrier", "flight"])


def board_of(client, path: str = BOARD) -> dict:
    r = client.get(path)
    assert r.status_code == 200, r.text
    return r.json()


def utc(moment: pd.Timestamp) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_board_lists_the_window_in_time_order_with_each_status(client, raw):
    body = board_of(client)
    assert (body["origin"], body["as_of"]) == ("EWR", "2013-08-15T12:00:00Z")
    assert (body["start"], body["end"]) == tuple(utc(m) for m in WINDOW)
    want = expected_board(raw, "EWR", *WINDOW)
    rows = body["flights"]
    got = [(r["carrier"], r["flight"], r["dest"], r["sched_dep"], r["status"]) for r in rows]
    assert got == [
        (r.carrier, r.flight, r.dest, utc(r.sched_dep), r.status) for r in want.itertuples()
    ]
    assert {r["status"] for r in rows} == {"departed", "overdue", "scheduled"}
    for row, flight in zip(rows, want.itertuples(), strict=True):
        local = flight.sched_dep.tz_convert(NEW_YORK).isoformat()
        assert row["origin"] == "EWR" and row["sched_dep_local"] == local
        if row["status"] == "departed":
            left = flight.sched_dep + pd.Timedelta(minutes=flight.dep_delay)
            assert (row["departed"], row["dep_delay"]) == (utc(left), flight.dep_delay)
        else:
            assert row["departed"] is None and row["dep_delay"] is None
        if row["status"] == "scheduled":
            lead = (flight.sched_dep - CLOCK) / pd.Timedelta(hours=1)
            assert row["lead_hours"] == lead > 0
            assert row["delayed"] == (row["delay_probability"] >= body["threshold"])
        else:  # nothing to predict: gone, or due and not gone
            assert row["delay_probability"] is None and row["delayed"] is None
            assert row["lead_hours"] is None
    assert body["threshold"] == CFG.serve.threshold and body["model_version"] == "1"


@pytest.mark.parametrize("board", [BOARD, "/departures/EWR?start=10:00&hours=2"])
def test_each_scheduled_rows_probability_is_get_flights_answer(client, board):
    """The parity: a board row is scored on the record GET /flights builds for it, at the
    clock, whether the window starts before the clock or after it."""
    rows = [r for r in board_of(client, board)["flights"] if r["status"] == "scheduled"]
    assert len(rows) > 20
    for row in rows:
        day = row["sched_dep_local"][:10]
        path = f"/flights/{row['carrier']}/{row['flight']}/{day}?origin=EWR"
        one = client.get(path).json()
        assert one["sched_dep"] == row["sched_dep"], path
        assert abs(one["delay_probability"] - row["delay_probability"]) <= 1e-9, path
        assert (one["delayed"], one["lead_hours"]) == (row["delayed"], row["lead_hours"])


def test_the_board_is_scored_in_one_model_call_and_logged_as_a_batch(client, data_dir, monkeypatch):
    svc = client.app.state.service
    calls = {"predict_many": 0, "predict_one": 0}

    def counted(name):
        method = getattr(svc, name)

        def call(*args, **kwargs):
            calls[name] += 1
            return method(*args, **kwargs)

        return call

    for name in calls:
        monkeypatch.setattr(svc, name, counted(name))
    body = board_of(client, "/departures/EWR?start=2013-08-15T08:00&hours=24")
    scored = [r for r in body["flights"] if r["status"] == "scheduled"]
    assert len(scored) > 300 and calls == {"predict_many": 1, "predict_one": 0}
    svc.logger.flush()
    rows, _ = read_log(data_dir / "predictions")
    logged = rows[rows["request_id"] == body["request_id"]]
    assert list(logged["flight"]) == [r["flight"] for r in scored]
    # A window with nothing to score makes no model call (EWR has no departures at 2 am).
    empty = board_of(client, "/departures/EWR?start=02:00&hours=1")
    assert empty["flights"] == [] and calls["predict_many"] == 1


def test_the_window_defaults_to_six_hours_from_the_clock_and_reads_new_york_time(client):
    default = board_of(client, "/departures/JFK")
    assert (default["start"], default["end"]) == ("2013-08-15T12:00:00Z", "2013-08-15T18:00:00Z")
    assert default["flights"] and all(
        "2013-08-15T12:00:00Z" <= r["sched_dep"] < "2013-08-15T18:00:00Z"
        for r in default["flights"]
    )
    # The same window, said four ways: a time of day and a moment without a zone are New
    # York's (EDT in August), a moment with a zone is that moment.
    for start in ("08:00", "2013-08-15T08:00", "2013-08-15T12:00Z", "2013-08-15T08:00-04:00"):
        same = board_of(client, f"/departures/JFK?start={start}&hours=6".replace("+", "%2B"))
        assert (same["start"], same["end"]) == (default["start"], default["end"]), start
        assert [r["sched_dep"] for r in same["flights"]] == [
            r["sched_dep"] for r in default["flights"]
        ]


def test_a_board_a_week_ahead_holds_what_the_timetable_has_published(client, raw, data_dir):
    """The timetable is published a week ahead: at the clock, up to 22 August 12:00 UTC; a
    moment before the clock, passed to the store, knows less (a feed running alongside
    writes rows ahead of the clock it has moved)."""
    low, high = pd.Timestamp("2013-08-22T10:00Z"), pd.Timestamp("2013-08-22T16:00Z")
    body = board_of(client, f"/departures/EWR?start={utc(low)}")
    want = expected_board(raw, "EWR", low, high)
    assert [r["sched_dep"] for r in body["flights"]] == [utc(s) for s in want["sched_dep"]]
    assert low < want["sched_dep"].max() <= CLOCK + PUBLISHED_AHEAD < high
    with SQLiteStore(data_dir / "online" / "features.sqlite") as store:
        span = (low.value, high.value)
        at_clock = store.departures_from("EWR", *span, CLOCK.value)
        earlier = CLOCK - pd.Timedelta(hours=1)
        before = store.departures_from("EWR", *span, earlier.value)
    horizon = (earlier + PUBLISHED_AHEAD).value
    assert before == [row for row in at_clock if row[2] <= horizon] != at_clock


@pytest.mark.parametrize(
    ("path", "where", "says"),
    [
        ("/departures/BOS", "origin", "'EWR', 'JFK' or 'LGA'"),
        ("/departures/ewr", "origin", "'EWR', 'JFK' or 'LGA'"),
        ("/departures/EWR?hours=25", "hours", "less than or equal to 24"),
        ("/departures/EWR?hours=0", "hours", "greater than 0"),
        ("/departures/EWR?hours=six", "hours", "valid number"),
        ("/departures/EWR?start=noon", "start", "neither a moment"),
        ("/departures/EWR?start=25:00", "start", "neither a moment"),
        ("/departures/EWR?start=0001-01-01T00:00", "start", "the year must be 2000 to 2100"),
        ("/departures/EWR?start=1376596800", "start", "neither a moment"),  # not Unix seconds
        ("/departures/EWR?start=5", "start", "neither a moment"),
        ("/departures/EWR?start=20:00Z", "start", "a time of day is New York's"),
        ("/departures/EWR?start=20:00%2B02:00", "start", "a time of day is New York's"),
    ],
)
def test_a_bad_origin_or_window_is_422_naming_it(client, path, where, says):
    r = client.get(path)
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"][-1] == where and says in error["msg"], error


def test_no_store_then_an_empty_one_are_503(smoke_pipeline, tmp_path):
    path = tmp_path / "online" / "features.sqlite"
    for c in client_on({"FD_DATA_DIR": str(tmp_path)}):
        r = c.get(BOARD)
        assert r.status_code == 503 and "run `python -m src.feed`" in r.json()["detail"]
        SQLiteStore(path).close()  # the tables, no clock: never fed
        r = c.get(BOARD)
        assert r.status_code == 503 and "empty: run `python -m src.feed`" in r.json()["detail"]


def test_the_api_key_guards_the_board(smoke_pipeline, data_dir):
    for c in client_on({"FD_DATA_DIR": str(data_dir), "FD_API_KEY": "k3y"}):
        assert c.get(BOARD).status_code == 401
        assert c.get(BOARD, headers={"X-API-Key": "k3y"}).status_code == 200


@pytest.mark.slow
def test_on_redis_the_board_is_the_same_and_a_lost_server_is_503(
    smoke_pipeline, client, fed_tables
):
    with redis_server() as url:
        with RedisStore(url) as store:
            feed(store, fed_tables, until=CLOCK)
        for c in client_on({"FD_REDIS_URL": url}):
            on_redis = board_of(c)
            admin = redis.Redis.from_url(url)
            with closing(admin):
                # A store fed before the board's index existed is refused, not shown empty.
                index = "fd:departures:LGA"
                held = admin.dump(index)
                admin.delete(index)
                r = c.get("/departures/LGA")
                assert r.status_code == 503 and "no departures index for LGA" in r.text
                admin.restore(index, 0, held)
                assert board_of(c, "/departures/LGA")["flights"]
                with contextlib.suppress(redis.ConnectionError):
                    admin.shutdown(nosave=True)  # the server goes away under the API
            r = c.get(BOARD)
            assert r.status_code == 503 and r.json()["detail"] == (
                "the online store (Redis) is not answering"
            )
    on_sqlite = board_of(client)
    ignore = {"request_id"}
    assert {k: v for k, v in on_redis.items() if k not in ignore} == {
        k: v for k, v in on_sqlite.items() if k not in ignore
    }
