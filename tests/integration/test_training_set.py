"""Training examples on the smoke pipeline's raw snapshot (all of 2013): every departed flight
at every lead, each moment before the flight left, and a flight's own departure never in its
features (slow: the views of the whole year, built twice)."""

from __future__ import annotations

import pandas as pd
import pytest

from src.featurestore.offline import build_views
from src.featurestore.training import LEADS_HOURS, training_examples
from src.featurestore.views import departures

pytestmark = pytest.mark.slow


def test_every_departed_flight_is_an_example_at_every_lead_before_it_left(raw, views):
    got = training_examples(raw["flights"], views)
    left = departures(raw["flights"])
    # No flight of 2013 left an hour or more early, so none is dropped.
    assert len(got) == len(LEADS_HOURS) * len(left)
    assert (left["departed"].reindex(got.index).to_numpy() > got["as_of"].to_numpy()).all()
    assert got["delayed"].mean() == pytest.approx((left["dep_delay"] >= 15).mean())
    two_hours = got[got["lead_hours"].eq(2)]
    assert two_hours["airport_departed_2h"].notna().mean() > 0.95
    assert (
        two_hours["plane_last_dep_delay"].notna().mean() > 0.25
    )  # 29%: a plane seen in the last 12 h


def test_a_flight_leaving_later_changes_its_label_and_none_of_its_features(raw, views):
    """One departed flight every third day (so no two share a plane or an airport window
    within a day) leaves two hours later in a copy of the raw data: its examples keep every
    feature and only their label can move."""
    flights = raw["flights"]
    left = flights[flights["dep_delay"].notna() & flights["day"].mod(3).eq(0)]
    sample = left.groupby(["month", "day"]).sample(1, random_state=24).index
    later = flights.copy()
    later.loc[sample, "dep_delay"] += 120
    before = training_examples(flights.loc[sample], views)
    after = training_examples(later.loc[sample], build_views(raw | {"flights": later}))
    assert len(before) == len(LEADS_HOURS) * len(sample)
    assert after["delayed"].sum() > before["delayed"].sum()
    assert after["delayed"].ge(before["delayed"]).all()
    pd.testing.assert_frame_equal(after.drop(columns="delayed"), before.drop(columns="delayed"))
