"""The what-if's plain functions: the controls' first values, the changed record (never
the flight number), what changed in words, the move in points. Fast, no API."""

from __future__ import annotations

from dashboard import what_if
from src.common.schema import REQUEST_FIELDS

RECORD = {"hour": 20, "minute": 0, "flight": 236, "precip": 0, "visib": 10.0, "temp": None}


def test_the_controls_are_fields_of_post_predict():
    assert set(what_if.CONTROLS) <= set(REQUEST_FIELDS)


def test_initial_values_as_the_inputs_hold_them():
    assert what_if.initial(RECORD, "hour") == 20 and type(what_if.initial(RECORD, "hour")) is int
    assert what_if.initial(RECORD, "precip") == 0.0
    assert type(what_if.initial(RECORD, "precip")) is float
    assert what_if.initial(RECORD, "temp") is None
    assert what_if.initial(RECORD, "wind_speed") is None  # not in the record


def test_the_changed_record_drops_the_flight_number_and_keeps_the_rest():
    out = what_if.changed(RECORD, {"precip": 0.5, "hour": 7})
    assert out == {"hour": 7, "minute": 0, "precip": 0.5, "visib": 10.0, "temp": None}
    assert RECORD["precip"] == 0 and RECORD["flight"] == 236  # the record itself untouched


def test_changes_in_words_name_only_what_moved():
    values = {"hour": 20, "precip": 0.5, "visib": 10.0, "temp": 70.0}
    assert what_if.changes(RECORD, values) == [
        "Precipitation, inches: 0 → 0.5",
        "Temperature, °F: no reading → 70.0",
    ]
    assert what_if.changes(RECORD, {"hour": 20, "precip": 0.0}) == []


def test_points():
    assert what_if.points(0.452, 0.416) == "+3.6 points"
    assert what_if.points(0.30, 0.416) == "-11.6 points"
    assert what_if.points(0.416, 0.416) == "+0.0 points"
