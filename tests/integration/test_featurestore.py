"""The offline store on the smoke pipeline's raw snapshot (all of 2013): the stage writes the
views; no feature of a flight, and no score of the smoke champion, moves when its own
departure, or anything after its moment, changes (leakage); the airport state equals a
brute-force count on the real departures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src import features
from src.common.io import read_json
from src.common.paths import SMOKE_CONFIG
from src.common.schema import WEATHER
from src.featurestore.offline import as_of, build_views, load_views
from src.featurestore.training import LOCAL_SCHEDULE
from src.featurestore.views import (
    AIRPORT_STATE,
    OBSERVATION_DELAY,
    PUBLISHED_AHEAD,
    WINDOW,
    departures,
    scheduled_departure,
)
from src.model.features import request_columns
from src.serving.loader import load_export
from tests.integration.support import CFG

LEAD = pd.Timedelta(hours=2)


@pytest.mark.slow
def test_the_stage_writes_every_view_and_a_manifest_naming_the_raw_snapshot(
    smoke_pipeline, raw, views
):
    assert features.main(["--config", str(SMOKE_CONFIG)]) == 0
    manifest = read_json(smoke_pipeline.features_manifest)
    assert manifest["raw_snapshot_sha256"] == raw["_manifest"]["snapshot_sha256"]
    for name, table in load_views(smoke_pipeline).items():
        assert manifest["views"][name]["rows"] == len(table)
        # Parquet gives back a missing string as None where the CSV reader gave NaN.
        pd.testing.assert_frame_equal(table.fillna(np.nan), views[name].fillna(np.nan))


def rewrite_after(raw: dict, moment: pd.Timestamp) -> dict:
    """A copy of the raw data where everything after `moment` is different: every departure
    after it leaves 999 minutes later or is cancelled, every reading after it changes, and
    the timetable not yet published by then is gone."""
    flights, weather = raw["flights"].copy(), raw["weather"].copy()
    left = departures(flights)["departed"].reindex(flights.index)
    later = (left > moment).to_numpy()
    cancel = later & (np.arange(len(flights)) % 5 == 0)
    flights.loc[later, ["dep_delay", "dep_time"]] += 999
    flights.loc[cancel, ["dep_delay", "dep_time"]] = np.nan
    flights = flights[scheduled_departure(flights) - PUBLISHED_AHEAD <= moment]
    readings = [c.name for c in WEATHER]
    weather.loc[weather["time_hour"] + OBSERVATION_DELAY > moment, readings] += 5  # unreported
    return raw | {"flights": flights, "weather": weather}


def flight_keys(flights: pd.DataFrame, moment: pd.Timestamp) -> pd.DataFrame:
    keys = flights[["carrier", "flight", "origin"]].assign(sched_dep=scheduled_departure(flights))
    return keys.assign(as_of=moment)


def scores(model, flights: pd.DataFrame, found: pd.DataFrame) -> np.ndarray:
    """The model's scores of the flights' records as of their moments: the view fields
    `as_of` found, the lead and the flight's local schedule."""
    lead = (found["sched_dep"] - found["as_of"]).dt.total_seconds() / 3600
    records = found.assign(lead_hours=lead, **flights.loc[found.index, LOCAL_SCHEDULE])
    return model.predict_proba(request_columns(records))


@pytest.mark.parametrize("seed", [24, 2013])
def test_no_feature_moves_when_the_flight_or_anything_after_its_moment_changes(
    smoke_pipeline, raw, views, seed
):
    """A departed flight, scored 2 hours before its scheduled departure with every other
    flight due in the next 6 hours: their features as of that moment, and the smoke
    champion's scores of them, are the same when the flight's own departure, and every
    event after the moment, are rewritten."""
    flights = raw["flights"]
    busy = flights[flights["dep_delay"].ge(0) & flights["hour"].between(15, 19)]
    flight = busy.sample(1, random_state=seed)
    moment = scheduled_departure(flight).iloc[0] - LEAD
    sched = scheduled_departure(flights)
    due = flights[(sched > moment) & (sched <= moment + pd.Timedelta(hours=6))]
    examples = flight_keys(due, moment)
    assert flight.index[0] in due.index and len(due) > 50

    rewritten = build_views(rewrite_after(raw, moment))
    before, after = as_of(examples, views), as_of(examples, rewritten)
    pd.testing.assert_frame_equal(after, before)
    model = load_export(CFG, smoke_pipeline).model
    np.testing.assert_array_equal(scores(model, flights, after), scores(model, flights, before))
    assert "airport_overdue_2h" in model.features  # the champion reads the store's fields
    # The rewrite is real: a moment after the flights left sees it.
    later = examples.assign(as_of=moment + pd.Timedelta(hours=8))
    changed = as_of(later, rewritten)["airport_mean_delay_2h"]
    assert not changed.equals(as_of(later, views)["airport_mean_delay_2h"])
    assert before["airport_departed_2h"].notna().all() and before["temp"].notna().any()


def brute_force_state(at_origin: pd.DataFrame, moment: pd.Timestamp) -> tuple:
    """Count, mean delay and share >= 15 of one origin's departures in (t - 2h, t], and its
    flights due in (t - 2h, t] that had not left by t (`at_origin`: sched, departed,
    dep_delay; departed is NaT for a cancelled flight)."""
    departed = at_origin["departed"]
    window = (departed > moment - WINDOW) & (departed <= moment)
    due = (at_origin["sched"] > moment - WINDOW) & (at_origin["sched"] <= moment)
    overdue = int((due & ~(departed <= moment)).sum())  # NaT (cancelled) has not left
    delays = at_origin.loc[window, "dep_delay"]
    if delays.empty:
        return 0, np.nan, np.nan, overdue
    return len(delays), delays.mean(), (delays >= 15).mean(), overdue


def test_airport_state_equals_a_brute_force_count_on_the_real_departures(raw, views):
    """200 (origin, moment) pairs: random seconds of the year, and moments a departure
    enters or leaves the window (where an off-by-one would show)."""
    left = departures(raw["flights"])
    rng = np.random.default_rng(13)
    start, end = left["departed"].min(), left["departed"].max()
    seconds = rng.integers(0, int((end - start).total_seconds()), size=100)
    events = left["departed"].sample(100, random_state=13).to_numpy()
    moments = [
        *(start + pd.to_timedelta(seconds, unit="s")),
        *events[:50],
        *(events[50:] + WINDOW),
    ]
    origins = rng.choice(["EWR", "JFK", "LGA"], size=len(moments))
    examples = pd.DataFrame({"origin": origins, "as_of": pd.DatetimeIndex(moments, tz="UTC")})
    got = as_of(examples, {"airport_state": views["airport_state"]})
    flights = raw["flights"][["origin", "dep_delay"]].assign(
        sched=scheduled_departure(raw["flights"])
    )
    flights["departed"] = flights["sched"] + pd.to_timedelta(flights["dep_delay"], unit="min")
    by_origin = dict(tuple(flights.groupby("origin")))
    expected = [brute_force_state(by_origin[o], t) for o, t in examples.to_numpy()]
    expected = pd.DataFrame(expected, columns=AIRPORT_STATE.field_names)
    got = got[AIRPORT_STATE.field_names].fillna({"airport_departed_2h": 0, "airport_overdue_2h": 0})
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, atol=1e-9)
    assert (got["airport_departed_2h"] > 0).mean() > 0.5
    assert (got["airport_overdue_2h"] > 0).mean() > 0.3
