"""The online store's rules on the SQLite backend, with hand-made rows: a newer event wins
whatever the order of arrival, a value past its time-to-live reads missing, the clock
persists and never goes back, reads refuse what the store cannot answer, and the feed
applies events in event-time order, chunk by chunk, resuming after its clock. The same
rules on Redis, and the skew against the offline store, are in
tests/integration/test_online_store.py."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from src import feed as feed_stage
from src.common.errors import PipelineError
from src.common.schema import WEATHER
from src.featurestore.offline import as_of
from src.featurestore.online import chunk_ends, encode_key, feed, lookup, nanoseconds
from src.featurestore.online_sqlite import SQLiteStore
from src.featurestore.views import NEW_YORK, VIEWS


def utc(*moments: str) -> pd.DatetimeIndex:
    return pd.to_datetime(list(moments), utc=True).as_unit("ns")


def weather_rows(*rows: tuple) -> pd.DataFrame:
    """The weather view's rows from (origin, moment observed, temp); the other readings
    fixed."""
    df = pd.DataFrame(rows, columns=["origin", "observed", "temp"])
    df["observed"] = utc(*df["observed"])
    return df.assign(**{c.name: 1.0 for c in WEATHER if c.name != "temp"})


def state_rows(*rows: tuple) -> pd.DataFrame:
    """The airport-state view's rows from (origin, UTC moment, departed, mean delay)."""
    df = pd.DataFrame(
        rows, columns=["origin", "at", "airport_departed_2h", "airport_mean_delay_2h"]
    )
    return df.assign(at=utc(*df["at"]), airport_share_delayed_2h=0.5, airport_overdue_2h=1.0)


@pytest.fixture
def store(tmp_path):
    with SQLiteStore(tmp_path / "online.sqlite") as s:
        yield s


def test_an_older_event_never_overwrites_a_newer_one(store):
    store.apply("weather", weather_rows(("EWR", "2013-03-05 12:00", 32.0)))
    store.apply("weather", weather_rows(("EWR", "2013-03-05 11:00", 31.0)))  # late arrival
    store.advance("2013-03-05T12:30Z")
    assert store.read("weather", ["EWR"])["temp"] == 32.0
    # Within one batch too, and an event of the same moment replaces (the later one wins).
    store.apply(
        "weather",
        weather_rows(("EWR", "2013-03-05 12:00", 33.0), ("EWR", "2013-03-05 10:00", 30.0)),
    )
    assert store.read("weather", ["EWR"])["temp"] == 33.0


def test_a_value_older_than_its_ttl_reads_missing_never_current(store):
    store.apply("weather", weather_rows(("EWR", "2013-03-05 10:00", 30.0)))
    store.apply("airport_state", state_rows(("EWR", "2013-03-05 10:00", 3, 12.0)))
    store.advance("2013-03-05T13:00Z")  # exactly the weather's 3 hours: still current
    assert store.read("weather", ["EWR"])["temp"] == 30.0
    store.advance("2013-03-05T13:00:01Z")
    stale = store.read("weather", ["EWR"])
    assert all(stale[c.name] is None for c in WEATHER)
    assert stale["weather_age_s"] == 3 * 3600 + 1  # how old it was, still said
    # A view without a time-to-live keeps its value.
    later = store.read("airport_state", ["EWR"], moment=pd.Timestamp("2013-03-09", tz="UTC"))
    assert later["airport_departed_2h"] == 3 and later["airport_state_age_s"] == 4 * 86400 - 36000


def test_the_clock_persists_across_reopening_and_never_goes_back(tmp_path):
    path = tmp_path / "online.sqlite"
    with SQLiteStore(path) as store:
        assert store.clock is None
        store.advance("2013-03-05T13:00Z")
        store.advance("2013-03-05T12:00Z")
    with SQLiteStore(path) as store:
        assert store.clock == pd.Timestamp("2013-03-05T13:00Z")


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2013, 3, 10, 1, 59, 59, 999_999, NEW_YORK),  # the hour before DST starts
        datetime(2013, 3, 10, 3, 0, tzinfo=NEW_YORK),
        datetime(2013, 11, 3, 1, 30, fold=1, tzinfo=NEW_YORK),  # the repeated hour, second
        datetime(1969, 12, 31, 23, 0, 0, 1, NEW_YORK),  # before the epoch
    ],
)
def test_a_zoned_datetime_is_the_nanoseconds_pandas_gives(moment):
    """nanoseconds() reads a plain datetime without pandas: the same instant, exactly."""
    assert nanoseconds(moment) == pd.Timestamp(moment).value
    assert (
        nanoseconds(pd.Timestamp(moment) + pd.Timedelta(1, "ns")) == pd.Timestamp(moment).value + 1
    )
    with pytest.raises(PipelineError, match="not a UTC instant"):
        nanoseconds(moment.replace(tzinfo=None))


def test_reads_refuse_what_the_store_cannot_answer(store):
    with pytest.raises(PipelineError, match="empty: run `python -m src.feed`"):
        store.read("weather", ["EWR"])
    store.advance("2013-03-05T13:00Z")
    with pytest.raises(PipelineError, match="before the online store's clock"):
        store.read("weather", ["EWR"], moment="2013-03-05T12:59Z")
    with pytest.raises(PipelineError, match="not a UTC instant"):
        store.read("weather", ["EWR"], moment="2013-03-05T14:00")
    with pytest.raises(PipelineError, match="no feature view 'weathr'"):
        store.read("weathr", ["EWR"])
    with pytest.raises(PipelineError, match="is not \\('origin',\\)"):
        store.read("weather", ["EWR", "JFK"])
    assert store.read("weather", ["LGA"]) == dict.fromkeys(
        [*VIEWS["weather"].field_names, "weather_age_s"]
    )


def test_a_file_written_for_other_declarations_is_refused(tmp_path):
    path = tmp_path / "online.sqlite"
    with sqlite3.connect(path) as db:
        db.execute('CREATE TABLE "weather" (origin TEXT PRIMARY KEY, time_hour INTEGER, temp REAL)')
    with pytest.raises(PipelineError, match=f"{path}: table 'weather' has columns"):
        SQLiteStore(path)


def test_values_round_trip_exactly_and_missing_stays_missing(store):
    rows = weather_rows(("EWR", "2013-03-05 10:00", 0.1 + 0.2), ("JFK", "2013-03-05 10:00", None))
    store.apply("weather", rows.assign(visib=[1 / 3, 1e-300]))
    store.advance("2013-03-05T10:00Z")
    ewr, jfk = store.read("weather", ["EWR"]), store.read("weather", ["JFK"])
    assert (ewr["temp"], ewr["visib"], jfk["visib"]) == (0.1 + 0.2, 1 / 3, 1e-300)
    assert jfk["temp"] is None and jfk["weather_age_s"] == 0.0


# ------------------------------------------------------------------ the feed
TABLES = {
    "weather": weather_rows(
        ("EWR", "2013-03-05 10:00", 30.0),
        ("EWR", "2013-03-05 11:00", 31.0),
        ("JFK", "2013-03-05 11:00", 50.0),
        ("EWR", "2013-03-05 12:00", 32.0),
    ),
    "airport_state": state_rows(
        ("EWR", "2013-03-05 10:30", 1, 5.0),
        ("EWR", "2013-03-05 11:00", 2, 10.0),
        ("EWR", "2013-03-05 12:30", 1, 15.0),
    ),
}


def test_chunks_never_split_the_events_of_one_moment():
    times = utc("2013-03-05 10:00", "2013-03-05 10:30", "2013-03-05 11:00", "2013-03-05 11:00")
    assert chunk_ends(times.asi8, 2) == [times.asi8[1], times.asi8[3]]
    assert chunk_ends(times.asi8, 3) == [times.asi8[3]]
    assert chunk_ends(times.asi8[:0], 3) == []


def test_the_feed_applies_events_up_to_a_moment_and_resumes_after_its_clock(store):
    seen = []
    applied = feed(
        store, TABLES, until="2013-03-05T11:00Z", chunk=2, progress=lambda n, t: seen.append((n, t))
    )
    # Events at 10:00, 10:30 | 11:00 (three of them, one chunk), nothing after 11:00.
    assert applied == 5 and [n for n, _ in seen] == [2, 5]
    assert store.clock == pd.Timestamp("2013-03-05T11:00Z")
    assert store.read("weather", ["EWR"])["temp"] == 31.0
    assert feed(store, TABLES, until="2013-03-05T11:00Z") == 0  # nothing new before 11:00
    assert feed(store, TABLES) == 2  # resumes after its clock: the 12:00 and 12:30 events
    assert store.clock == pd.Timestamp("2013-03-05T12:30Z")
    assert store.read("weather", ["EWR"])["temp"] == 32.0


def test_the_feed_refuses_a_gap_after_its_clock_and_an_empty_chunk(store):
    """Starting past the clock would skip events the clock then claims were applied."""
    feed(store, TABLES, until="2013-03-05T10:30Z")
    with pytest.raises(PipelineError, match="is after the store's clock"):
        feed(store, TABLES, start="2013-03-05T12:00Z")
    assert feed(store, TABLES, start="2013-03-05T10:30Z", until="2013-03-05T11:00Z") == 4
    with pytest.raises(PipelineError, match="chunk: 0 events per write"):
        feed(store, TABLES, chunk=0)


def test_a_row_written_past_the_moment_of_a_read_is_not_yet_known(store):
    """A feed running alongside may write a chunk before it moves the clock."""
    store.advance("2013-03-05T11:00Z")
    store.apply("weather", weather_rows(("EWR", "2013-03-05 11:30", 31.0)))
    assert store.read("weather", ["EWR"]) == dict.fromkeys(
        [*VIEWS["weather"].field_names, "weather_age_s"]
    )


def test_a_whole_number_key_is_one_key_whatever_its_type():
    """1545.0 (a flight number from a column with gaps) is the flight 1545 on both stores."""
    view, sched = VIEWS["timetable"], "2013-03-05T12:00Z"
    as_int = encode_key(view, ["UA", 1545, "EWR", sched])
    assert encode_key(view, ["UA", 1545.0, "EWR", sched]) == as_int
    assert type(encode_key(view, ["UA", np.float64(1545.0), "EWR", sched])[1]) is int
    with pytest.raises(PipelineError, match="key part 1545.5 is not a whole number"):
        encode_key(view, ["UA", 1545.5, "EWR", sched])


def test_lookup_reads_every_view_as_the_offline_join_does(store):
    """The timetable names the plane, the plane view is read by it, at one moment."""
    flight = {
        "carrier": "UA",
        "flight": 1545,
        "origin": "EWR",
        "sched_dep": utc("2013-03-05 14:00")[0],
    }
    timetable = pd.DataFrame([flight]).assign(
        published=utc("2013-02-26 14:00"),
        dest="IAH",
        distance=1400,
        tailnum="N14228",
        origin_hour_scheduled=4,
        origin_day_scheduled=300,
        carrier_day_scheduled=100,
        plane_leg=2.0,
        plane_turnaround_min=None,
    )
    plane = pd.DataFrame(
        {"tailnum": ["N14228"], "departed": utc("2013-03-05 09:00"), "plane_last_dep_delay": [7.0]}
    )
    tables = TABLES | {"timetable": timetable, "plane_last_leg": plane}
    feed(store, tables, until="2013-03-05T12:15Z")
    online = lookup(store, flight | {"flight": np.int64(1545)})  # as a DataFrame holds it
    offline = as_of(pd.DataFrame([flight]).assign(as_of=utc("2013-03-05 12:15")), tables).iloc[0]
    assert online["plane_last_dep_delay"] == 7.0 and online["plane_leg"] == 2
    for column, value in online.items():
        expected = offline[column]
        assert (value is None and pd.isna(expected)) or value == expected, column


def test_the_stage_says_in_one_line_that_the_features_are_missing(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FD_DATA_DIR", str(tmp_path / "data"))
    assert feed_stage.main(["--until", "2013-03-05"]) == 1
    assert "timetable.parquet: not found; run `python -m src.features` first" in caplog.text
