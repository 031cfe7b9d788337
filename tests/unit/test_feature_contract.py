"""The feature contract travels with the model (issue 22): the model file records the ordered
features it was trained on, scoring builds exactly those, and a file naming a feature this
code cannot build is refused when it loads, in one line naming the feature."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from src.common.schema import FEATURES, STORE_FIELDS
from src.model.features import (
    BUILDABLE,
    UNRECORDED_FEATURES,
    FeatureState,
    UnbuildableFeatures,
    build_features,
    request_columns,
)
from src.model.fit import fit_model
from src.model.model import FlightDelayModel, from_bytes, to_bytes

FEW = ["hour", "origin", "carrier", "temp", "day_of_week"]  # another order, categories inside


def with_features(cfg, features):
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"features": features})})


@pytest.fixture(scope="module")
def few_model(served_slice, raw_slice, smoke_cfg) -> FlightDelayModel:
    train = served_slice.head(2000)  # 2,000 flights of 1-3 January, each once
    return fit_model("lightgbm", train, raw_slice["planes"], with_features(smoke_cfg, FEW))


def test_the_code_builds_every_declared_feature_and_no_other():
    """The 22 built from the schedule, plane and weather, then the feature store's 14 (issue
    24): files from before the list was recorded hold the 22 only."""
    assert set(FEATURES) == BUILDABLE and len(FEATURES) == 36
    store = {c.name for c in STORE_FIELDS}
    assert set(UNRECORDED_FEATURES) == set(FEATURES) - store and len(UNRECORDED_FEATURES) == 22


def test_a_model_trained_on_a_feature_list_records_it_and_builds_exactly_it(
    few_model, served_slice, feature_state
):
    assert few_model.features == tuple(FEW)
    assert few_model.estimator.booster.feature_name() == FEW
    cols = request_columns(served_slice.tail(50))
    X = build_features(cols, few_model.state)
    everything = build_features(cols, feature_state)  # the full default list, same flights
    assert X.shape == (50, len(FEW))
    for i, name in enumerate(FEW):
        np.testing.assert_array_equal(X[:, i], everything[:, FEATURES.index(name)], name)
    # origin and carrier are categorical wherever they sit in the list.
    assert few_model.estimator.booster.dump_model()["feature_infos"]["origin"]["values"]


def test_the_file_round_trip_keeps_the_list_and_the_scores(few_model, processed_slice):
    restored = from_bytes(to_bytes(few_model))
    cols = request_columns(processed_slice.tail(200))
    assert restored.features == tuple(FEW)
    np.testing.assert_array_equal(restored.predict_proba(cols), few_model.predict_proba(cols))
    one = {k: v[0] for k, v in request_columns(processed_slice.tail(1)).items()}
    assert restored.predict_one(one) == pytest.approx(few_model.predict_proba(cols)[-1], abs=1e-12)


def test_a_file_naming_a_feature_this_code_cannot_build_is_refused_naming_it(few_model):
    future = replace(few_model.state, features=(*FEW, "origin_delay_2h"))
    data = to_bytes(replace(few_model, state=future))
    with pytest.raises(UnbuildableFeatures) as refused:
        from_bytes(data, where="models/champion/model.pkl")
    message = str(refused.value)
    assert "'origin_delay_2h'" in message and "models/champion/model.pkl" in message
    assert "\n" not in message


def test_a_file_written_before_the_list_was_recorded_loads_with_the_old_list(feature_state):
    """Files before this change pickled the state's fields without `features` (all were
    trained on the 22 of UNRECORDED_FEATURES); unpickling hands that dict to __setstate__."""
    old_fields = {k: v for k, v in feature_state.__getstate__().items() if k != "features"}
    revived = FeatureState.__new__(FeatureState)
    revived.__setstate__(old_fields)
    assert revived.features == UNRECORDED_FEATURES
    assert revived.categories is feature_state.categories
