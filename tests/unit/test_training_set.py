"""Training examples with a moment, on a hand-made day at EWR: one example per departed flight
and lead, its moment the scheduled departure minus the lead, the label of the flight, and
never the flight's own departure in its features (even a flight that leaves early)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.common.errors import PipelineError
from src.common.schema import WEATHER
from src.featurestore.offline import build_views
from src.featurestore.training import training_examples
from src.featurestore.views import departures

STATE = ["plane_last_dep_delay", "airport_departed_2h", "airport_mean_delay_2h"]


def raw_day(delays: dict[int, float | None]) -> dict[str, pd.DataFrame]:
    """Four UA flights out of EWR on 2013-03-05 (local times, EST = UTC-5), the plane N1
    flying 1, 2 and 4; `delays` gives each flight's dep_delay (None: cancelled)."""
    rows = [(1, "N1", "07:00"), (2, "N1", "10:00"), (3, "N2", "10:30"), (4, "N1", "13:00")]
    local = pd.to_datetime([f"2013-03-05 {t}" for _, _, t in rows])
    utc_hour = local.floor("h").tz_localize("America/New_York").tz_convert("UTC")
    flights = pd.DataFrame(
        {
            "carrier": "UA",
            "flight": [n for n, _, _ in rows],
            "tailnum": [t for _, t, _ in rows],
            "origin": "EWR",
            "year": local.year,
            "month": local.month,
            "day": local.day,
            "hour": local.hour,
            "minute": local.minute,
            "time_hour": utc_hour.as_unit("ns"),
            "dest": "ORD",
            "distance": 719,
            "dep_delay": [delays[n] for n, _, _ in rows],
        }
    ).astype({"dep_delay": "float64"})
    hours = pd.date_range("2013-03-04 00:00", periods=48, freq="h", tz="UTC", unit="ns")
    weather = pd.DataFrame({"origin": "EWR", "time_hour": hours})
    weather = weather.assign(**{c.name: 1.0 for c in WEATHER})
    return {"flights": flights, "weather": weather}


ON_TIME = {1: 20.0, 2: 14.0, 3: 15.0, 4: None}


def examples_of(raw: dict, leads=(1, 2)) -> pd.DataFrame:
    return training_examples(raw["flights"], build_views(raw), leads)


def test_one_example_per_departed_flight_and_lead_with_its_moment_and_label():
    got = examples_of(raw_day(ON_TIME), (1, 2, 24))
    assert sorted(got.groupby("flight").size().items()) == [(1, 3), (2, 3), (3, 3)]  # 4 cancelled
    assert (got["sched_dep"] - got["as_of"]).eq(pd.to_timedelta(got["lead_hours"], "h")).all()
    assert got.index.tolist() == [0, 1, 2] * 3  # the flight's row in the raw flights
    assert got.groupby("flight")["delayed"].first().tolist() == [1, 0, 1]  # dep_delay >= 15
    # Flight 2 (15:00 UTC) as of 2 h before: N1's first leg left at 12:20, 40 min earlier.
    two_hours = got[got["lead_hours"].eq(2)].set_index("flight")
    assert two_hours.loc[2, "plane_last_dep_delay"] == 20.0
    assert two_hours.loc[2, "airport_departed_2h"] == 1
    assert two_hours.loc[2, "plane_leg"] == 2 and two_hours.loc[2, "dest"] == "ORD"


def test_a_flight_never_sees_its_own_departure_in_its_features():
    """Rewriting a flight's own delay (it still leaves after every moment) changes its label
    and nothing else in its examples."""
    before, after = (examples_of(raw_day(ON_TIME | {2: d})) for d in (14.0, 300.0))
    before, after = before[before["flight"].eq(2)], after[after["flight"].eq(2)]
    assert before["delayed"].eq(0).all() and after["delayed"].eq(1).all()
    pd.testing.assert_frame_equal(after.drop(columns="delayed"), before.drop(columns="delayed"))


def test_a_flight_that_left_before_its_moment_is_not_an_example_at_that_lead():
    """Flight 2 leaves 90 minutes early, before its 1 h moment: as of then the state views
    hold its own departure, so it has no 1 h example; its 2 h example sees only flight 1."""
    raw = raw_day(ON_TIME | {2: -90.0})
    got = examples_of(raw)
    own = got[got["flight"].eq(2)]
    assert own["lead_hours"].tolist() == [2.0]
    assert own["plane_last_dep_delay"].tolist() == [20.0]
    departed = departures(raw["flights"])["departed"]
    assert (departed.reindex(got.index).to_numpy() > got["as_of"].to_numpy()).all()


def test_the_state_views_see_departures_up_to_the_moment_and_not_after():
    """Flight 4 (18:00 UTC) as of 2 h before sees flight 2 (left 15:14) as the plane's last
    leg, and the airport's last two hours hold flights 2 and 3 (15:14 and 15:45), not 1."""
    got = examples_of(raw_day(ON_TIME | {4: 0.0}))
    four = got[got["flight"].eq(4)].set_index("lead_hours")
    assert four.loc[2.0, "plane_last_dep_delay"] == 14.0
    assert four.loc[2.0, "airport_departed_2h"] == 2
    assert four.loc[2.0, "airport_mean_delay_2h"] == pytest.approx(14.5)
    assert four.loc[1.0, "airport_departed_2h"] == 2  # 17:00: flights 2 and 3 still in it
    assert np.isnan(examples_of(raw_day(ON_TIME), (24,))[STATE[0]]).all()  # nothing a day ahead


@pytest.mark.parametrize("leads", [(), (2, 0), (-1,)])
def test_a_lead_must_be_positive(leads):
    with pytest.raises(PipelineError, match="a lead of more than 0 h"):
        examples_of(raw_day(ON_TIME), leads)
