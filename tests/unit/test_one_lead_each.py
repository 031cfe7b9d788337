"""Training takes each flight once, at one of its leads (src/model/fit.py one_lead_each):
every flight kept, its row whole, the leads spread evenly, the same rows on every run and
from a frame already cut."""

from __future__ import annotations

import pandas as pd

from src.common.schema import OUTCOME_KEY
from src.model.fit import one_lead_each


def test_each_flight_once_at_one_of_its_leads_spread_evenly(processed_slice):
    cut = one_lead_each(processed_slice)
    flights = processed_slice[list(OUTCOME_KEY)].drop_duplicates()
    assert len(cut) == len(flights) and not cut[list(OUTCOME_KEY)].duplicated().any()
    pd.testing.assert_frame_equal(cut, processed_slice.loc[cut.index])  # whole rows, in order
    shares = cut["lead_hours"].value_counts(normalize=True)
    assert set(shares.index) == set(processed_slice["lead_hours"])
    assert shares.between(0.15, 0.25).all(), shares.to_dict()


def test_the_cut_is_deterministic_and_a_cut_frame_is_kept_whole(processed_slice):
    cut = one_lead_each(processed_slice)
    pd.testing.assert_frame_equal(
        one_lead_each(processed_slice.sample(frac=1, random_state=3)).sort_index(), cut
    )
    pd.testing.assert_frame_equal(one_lead_each(cut), cut)
