"""Flights known by their keys, enriched from the offline store (src/featurestore/enrich.py),
on hand-made days: found by their New York date, built as training builds them, and every
key that names no departure, or two, or a moment not before the flight left, rejected with
its field and reason."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from src.common.errors import SchemaError
from src.common.schema import REQUEST_FIELDS, WEATHER
from src.featurestore.enrich import check_columns, enrich
from src.featurestore.offline import build_views
from src.featurestore.training import labelled_examples

NEW_YORK = "America/New_York"
# carrier, number, origin, New York date and time, tail, dep_delay (None: cancelled)
FLIGHTS = [
    ("UA", 1, "EWR", "2013-03-05 07:00", "N1", 20.0),
    ("UA", 2, "EWR", "2013-03-05 10:00", "N1", -30.0),  # left early, at 09:30
    ("UA", 3, "EWR", "2013-03-05 08:00", "N2", 0.0),  # one number, two airports
    ("UA", 3, "JFK", "2013-03-05 09:00", "N3", 5.0),
    ("UA", 4, "EWR", "2013-03-05 23:30", "N4", 16.0),  # 04:30 UTC on the 6th
    ("UA", 5, "LGA", "2013-03-05 07:00", "N5", 0.0),  # one number twice from one airport
    ("UA", 5, "LGA", "2013-03-05 19:00", "N5", None),
    ("UA", 6, "LGA", "2013-03-10 08:00", "N6", 3.0),  # summer time from 2 am that day
]


def raw_days() -> dict[str, pd.DataFrame]:
    local = pd.to_datetime([f[3] for f in FLIGHTS])
    utc_hour = local.floor("h").tz_localize(NEW_YORK).tz_convert("UTC")
    flights = pd.DataFrame(
        {
            "carrier": [f[0] for f in FLIGHTS],
            "flight": [f[1] for f in FLIGHTS],
            "origin": [f[2] for f in FLIGHTS],
            "tailnum": [f[4] for f in FLIGHTS],
            "year": local.year,
            "month": local.month,
            "day": local.day,
            "hour": local.hour,
            "minute": local.minute,
            "time_hour": utc_hour.as_unit("ns"),
            "dest": "ORD",
            "distance": 719,
            "dep_delay": [f[5] for f in FLIGHTS],
        }
    ).astype({"dep_delay": "float64"})
    hours = pd.date_range("2013-03-04 00:00", periods=24 * 8, freq="h", tz="UTC", unit="ns")
    weather = pd.concat(
        pd.DataFrame({"origin": o, "time_hour": hours}).assign(
            **{c.name: float(i) + np.arange(len(hours)) / 100 for c in WEATHER}
        )
        for i, o in enumerate(("EWR", "JFK", "LGA"))
    )
    return {"flights": flights, "weather": weather}


@pytest.fixture(scope="module")
def raw() -> dict[str, pd.DataFrame]:
    return raw_days()


@pytest.fixture(scope="module")
def views(raw) -> dict[str, pd.DataFrame]:
    return build_views(raw)


def keys(*rows) -> pd.DataFrame:
    """Keys as a CSV file gives them: text, None where a cell is empty."""
    return pd.DataFrame(rows, columns=["carrier", "flight", "date", "origin"], dtype=object)


def same(a: pd.Series, b: pd.Series) -> bool:
    """Equal, numbers to 1e-9, missing where missing."""
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    if a.dtype == object or b.dtype == object:
        return bool(((a.isna() & b.isna()) | (a == b)).all())
    close = np.isclose(a.astype(float), b.astype(float), rtol=0, atol=1e-9)
    return bool(((a.isna() & b.isna()) | close).all())


def test_each_flight_is_the_record_training_builds_at_its_lead(raw, views):
    """The flights one key names, at 2 h and at 6 h: every REQUEST field as the training
    examples hold it. UA 4 leaves at 23:30 New York time, 04:30 UTC the next day: its date is
    the New York one, and so is its schedule; UA 6 leaves after the clocks went forward."""
    flights = raw["flights"]
    unique = flights[flights["flight"].isin([1, 2, 4, 6])]
    asked = keys(*[("UA", str(n), f"{y}-{m:02d}-{d:02d}", None) for n, y, m, d in
                   unique[["flight", "year", "month", "day"]].itertuples(index=False)])  # fmt: skip
    for lead in (2, 6):
        got = enrich(asked, views, lead_hours=lead)
        assert got.rejects.empty and got.records.index.tolist() == [0, 1, 2, 3]
        expected = labelled_examples(unique, views, [lead]).sort_values("sched_dep")
        for field in REQUEST_FIELDS:
            assert same(got.records[field], expected[field]), field
        assert (got.records["sched_dep"] - got.records["as_of"]).eq(pd.Timedelta(hours=lead)).all()
    ua4 = got.records.loc[2]
    assert (ua4["year"], ua4["month"], ua4["day"], ua4["hour"], ua4["minute"]) == (
        2013,
        3,
        5,
        23,
        30,
    )
    assert ua4["sched_dep"] == pd.Timestamp("2013-03-06 04:30", tz="UTC")
    assert got.records.loc[3, "hour"] == 8 and got.records.loc[3, "sched_dep"].hour == 12  # EDT
    # 6 h before 12:00 UTC, EWR's latest report is the one of 05:00 (hour 29 of the data)
    assert got.records.loc[0, "temp"] == pytest.approx(0 + 29 / 100)


def test_the_date_is_new_yorks_not_utcs(views):
    asked = keys(("UA", "4", "2013-03-06", None)).drop(columns="origin")  # no origin column
    got = enrich(asked, views, lead_hours=2)
    assert got.records.empty
    assert got.rejects.loc[0].tolist() == [
        "flight",
        "no flight UA 4 on 2013-03-06 in the timetable",
    ]


def test_keys_that_name_no_departure_or_two_are_rejected_saying_why(views):
    got = enrich(
        keys(
            ("ZZ", "1", "2013-03-05", None),
            ("UA", "3", "2013-03-05", None),
            ("UA", "3", "2013-03-05", "JFK"),
            ("UA", "3", "2013-03-05", "LGA"),
            ("UA", "5", "2013-03-05", None),
            ("UA", "1", "2013-03-05", ""),  # an empty origin: any airport
        ),
        views,
        lead_hours=2,
    )
    assert got.rejects.to_dict("index") == {
        0: {"field": "flight", "reason": "no flight ZZ 1 on 2013-03-05 in the timetable"},
        1: {
            "field": "origin",
            "reason": "UA 3 on 2013-03-05 leaves from EWR at 08:00 and from JFK at 09:00"
            " (New York time): give the row its origin",
        },
        3: {"field": "flight", "reason": "no flight UA 3 on 2013-03-05 from LGA in the timetable"},
        4: {
            "field": "flight",
            "reason": "UA 5 on 2013-03-05 leaves LGA at 07:00 and 19:00 (New York time):"
            " which one?",
        },
    }
    assert got.records.index.tolist() == [2, 5]
    assert got.records["origin"].tolist() == ["JFK", "EWR"]
    assert got.records.loc[2, "hour"] == 9


def test_a_moment_not_before_the_flight_left_is_rejected(views):
    """UA 1 is due at 12:00 UTC; UA 2 was due at 15:00 UTC and left at 14:30."""
    asked = keys(*[("UA", n, "2013-03-05", None) for n in "11122"]).assign(
        at=[
            "2013-03-05T12:00Z",  # its scheduled departure: too late
            "2013-03-05T11:59:59Z",
            "2013-02-25T11:00Z",  # 8 days ahead: before the timetable held it
            "2013-03-05T14:45Z",  # after it left early
            "2013-03-05T09:15-05:00",  # 14:15 UTC: before it left
        ]
    )
    got = enrich(asked, views, as_of_column="at")
    assert got.rejects.to_dict("index") == {
        0: {
            "field": "at",
            "reason": "the moment 2013-03-05T12:00:00Z is not before the scheduled departure"
            " 2013-03-05T12:00:00Z: a flight is scored before it leaves",
        },
        2: {
            "field": "at",
            "reason": "as of 2013-02-25T11:00:00Z the timetable does not hold the flight yet"
            " (published 2013-02-26T12:00:00Z)",
        },
        3: {
            "field": "at",
            "reason": "the flight left at 2013-03-05T14:30:00Z, before the moment"
            " 2013-03-05T14:45:00Z: a flight is scored before it leaves",
        },
    }
    assert got.records.index.tolist() == [1, 4]
    assert got.records["lead_hours"].tolist() == pytest.approx([1 / 3600, 0.75])
    assert "as_of" not in got.records  # the moment is the input's own column


def test_bad_keys_are_rejected_row_by_row(views):
    asked = pd.DataFrame(
        {
            "carrier": ["UA", None, "UA", "UA", "UA", "UA", "UA"],
            "flight": ["1", "1", "x", "0", "1", "1", "1"],
            "date": ["2013-03-05", "2013-03-05", "2013-03-05", "2013-03-05", "05/03/2013",
                     "2013-03-05", "2013-03-05"],  # fmt: skip
            "at": ["2013-03-05T10:00Z"] * 5 + ["2013-03-05T10:00", None],
        }
    )
    got = enrich(asked, views, as_of_column="at")
    assert got.rejects.to_dict("index") == {
        1: {"field": "carrier", "reason": "missing"},
        2: {"field": "flight", "reason": "'x' is not a flight number (1-9999)"},
        3: {"field": "flight", "reason": "'0' is not a flight number (1-9999)"},
        4: {"field": "date", "reason": "'05/03/2013' is not a date (YYYY-MM-DD)"},
        5: {
            "field": "at",
            "reason": "'2013-03-05T10:00' is not a moment with a zone (e.g. 2013-03-05T10:00Z)",
        },
        6: {"field": "at", "reason": "missing"},
    }
    assert got.records.index.tolist() == [0]


def test_parquet_types_read_as_text_does(views):
    """A Parquet file's numbers, dates and zoned timestamps find the same flight."""
    as_text = keys(("UA", "1", "2013-03-05", None)).assign(at="2013-03-05T10:00Z")
    typed = pd.DataFrame(
        {
            "carrier": ["UA"],
            "flight": [1],
            "date": [date(2013, 3, 5)],
            "at": [pd.Timestamp("2013-03-05 05:00", tz=NEW_YORK)],
        }
    )
    a = enrich(as_text, views, as_of_column="at").records
    b = enrich(typed, views, as_of_column="at").records
    assert len(a) == 1 and a.equals(b)


def test_no_rows_no_records(views):
    got = enrich(keys(), views, lead_hours=2)
    assert got.records.empty and got.rejects.empty
    assert got.records.columns.tolist() == [*REQUEST_FIELDS, "sched_dep", "as_of"]


@pytest.mark.parametrize(
    ("names", "as_of_column", "error"),
    [
        (["carrier", "flight"], None, "required column(s) ['date'] missing"),
        (["carrier", "flight", "date"], "at", "no column 'at' (--as-of-column)"),
        (["carrier", "flight", "date", "temp"], None, "column(s) ['temp'] are filled by"),
        (["carrier", "flight", "date", "as_of"], None, "column(s) ['as_of'] are filled by"),
        (["carrier", "flight", "date", "sched_dep"], "sched_dep", "['sched_dep'] are filled by"),
    ],
)
def test_a_file_whose_columns_cannot_be_enriched(names, as_of_column, error):
    with pytest.raises(SchemaError, match="^keys.csv: ") as raised:
        check_columns(names, as_of_column, "keys.csv")
    assert error in str(raised.value)


def test_the_columns_that_can_be_enriched():
    check_columns(["carrier", "flight", "date", "origin", "as_of", "id"], "as_of", "keys.csv")
    check_columns(["flight", "date", "carrier"], None, "keys.csv")
