"""What the dashboard says: probabilities, durations, feature ages, the decision, reasons."""

from __future__ import annotations

import math

import pytest

from dashboard import text


@pytest.mark.parametrize(
    ("p", "shown"),
    [(0.41563, "41.6%"), (0.0, "0.0%"), (1.0, "100.0%"), (None, "unknown"), (math.nan, "unknown")],
)
def test_percent(p, shown):
    assert text.percent(p) == shown


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 s"),
        (45, "45 s"),
        (59.6, "1 min"),
        (120, "2 min"),
        (3599, "59 min"),
        (3600, "1 h"),
        (4140, "1 h 9 min"),
        (86400, "1 day"),
        (561600, "6 days 12 h"),
        (2 * 86400, "2 days"),
    ],
)
def test_duration(seconds, words):
    assert text.duration(seconds) == words


def test_feature_ages_in_words():
    assert text.age_in_words("airport_state", 120.0) == "the airport's state is 2 min old"
    assert text.age_in_words("timetable", 561600.0) == "the timetable is 6 days 12 h old"
    assert text.age_in_words("plane_last_leg", 4140.0) == "the plane's last leg is 1 h 9 min old"
    assert text.age_in_words("weather", 0.0) == "the weather is up to date"
    assert text.age_in_words("weather", None).startswith("the weather: no data")
    assert text.age_in_words("a_new_view", 60) == "a new view is 1 min old"


def test_lead_and_moment():
    assert text.lead_in_words(12.0) == "12 h before departure"
    assert text.lead_in_words(1.5) == "1 h 30 min before departure"
    assert text.moment("2013-08-15T12:00:00Z") == "2013-08-15 12:00 UTC"
    assert text.moment(None) == "unknown" and text.moment("soon") == "soon"


def test_decision_states_the_threshold():
    delayed = {"delay_probability": 0.4156, "delayed": True, "threshold": 0.3}
    assert text.decision(delayed) == "Likely delayed: 41.6% ≥ the threshold 30.0%"
    on_time = {"delay_probability": 0.12, "delayed": False, "threshold": 0.3}
    assert text.decision(on_time) == "Likely on time: 12.0% < the threshold 30.0%"


def test_reasons_are_the_explanations_texts_or_none():
    answer = {
        "explanation": {
            "base": -1.2,
            "raw_score": -0.5,
            "reasons": [
                {"group": "the timetable", "value": 0.42, "text": "the timetable: +0.42"},
                {"group": "the weather", "value": -0.1, "text": ""},
            ],
        }
    }
    assert text.reasons(answer) == [
        "the timetable: +0.42 (towards delayed)",
        "the weather: -0.10 (towards on time)",
    ]
    assert text.reasons({"explanation": {"reasons": [{"text": "x: +0.00", "value": 0.0}]}}) == [
        "x: +0.00 (no push)"
    ]
    assert text.reasons({}) == [] and text.reasons({"explanation": None}) == []


def test_flight_title():
    answer = {"carrier": "UA", "flight": 236, "origin": "EWR", "dest": "FLL"}
    answer["sched_dep"] = "2013-08-16T00:00:00Z"
    assert text.flight_title(answer) == "UA 236 EWR → FLL, scheduled 2013-08-16 00:00 UTC"
