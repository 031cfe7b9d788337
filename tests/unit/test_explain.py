"""Explanations (FlightDelayModel.explain): LightGBM's exact per-feature contributions
(TreeSHAP, `pred_contrib`) summed by the groups of src.model.features.EXPLANATION_GROUPS.

On a small real model (LightGBM fitted here on the first 8,000 examples of the unit slice,
all 36 features) scoring the other ~6,900: on the plain path
(lightgbm.Booster) and the C-API fast path (src/serving/lgb_capi.py) the contributions and
the base value sum to the booster's raw score (the logit) within 1e-9, the two paths agree
within 1e-9, and each group's value is the sum of its features' contributions.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from src.common.schema import FEATURES, REQUEST_FIELDS, TARGET
from src.model.features import (
    BUILDABLE,
    EXPLANATION_GROUPS,
    build_features,
    categorical_positions,
    fit_state,
    group_key,
    request_columns,
    request_records,
)
from src.model.fit import fit_logistic
from src.model.model import (
    FlightDelayModel,
    LightGBMBooster,
    NotExplainable,
    PlattCalibrator,
    from_bytes,
    logit,
    to_bytes,
)
from src.registry.card import CONTRIBUTION_METRIC, EXPLAINED_METRIC, render_model_card
from src.serving.lgb_capi import CApiBooster
from src.tracking import runs

TRAIN_ROWS = 8000
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def plain(processed_slice, raw_slice) -> FlightDelayModel:
    """LightGBM on all 36 features, fitted here (not by the training recipe, which may
    change): 60 trees of 15 leaves, categorical features by code."""
    train = processed_slice.head(TRAIN_ROWS)
    cols = request_columns(train)
    state = fit_state(cols, raw_slice["planes"], FEATURES)
    data = lgb.Dataset(
        build_features(cols, state),
        train[TARGET].to_numpy(),
        categorical_feature=categorical_positions(state.features),
        free_raw_data=False,
    )
    params = {"objective": "binary", "num_leaves": 15, "learning_rate": 0.1, "verbose": -1}
    booster = lgb.train({**params, "seed": 7, "num_threads": 1}, data, num_boost_round=60)
    return FlightDelayModel(state, LightGBMBooster(booster), "lightgbm")


@pytest.fixture(scope="module")
def fast(plain) -> FlightDelayModel:
    """The same model file read as the API reads it: the C-API booster."""
    return from_bytes(to_bytes(plain), CApiBooster)


@pytest.fixture(scope="module")
def cols(processed_slice) -> dict[str, np.ndarray]:
    return request_columns(processed_slice.iloc[TRAIN_ROWS:])


def booster_raw_score(model: FlightDelayModel, cols) -> np.ndarray:
    """The plain booster's own raw score (logit, before calibration) for each flight: what
    the contributions and the base value sum to (the batch job's test uses it too)."""
    X = build_features(cols, model.state)
    return model.estimator.booster.predict(X, raw_score=True, num_threads=1)


@pytest.fixture(scope="module")
def raw_score(plain, cols) -> np.ndarray:
    """The booster's own raw score (logit) for each held-out example."""
    return booster_raw_score(plain, cols)


def test_every_buildable_feature_is_in_exactly_one_group():
    names = [name for _, members in EXPLANATION_GROUPS for name in members]
    assert len(names) == len(set(names)), "a feature in two groups"
    assert set(names) == BUILDABLE
    groups = [group for group, _ in EXPLANATION_GROUPS]
    assert len(groups) == len(set(groups)) and all(members for _, members in EXPLANATION_GROUPS)


def test_plain_path_contributions_sum_to_the_raw_score(plain, cols, raw_score):
    contributions = plain.contributions(cols)
    assert contributions.shape == (len(raw_score), len(FEATURES) + 1)
    np.testing.assert_allclose(contributions.sum(axis=1), raw_score, rtol=0, atol=TOLERANCE)
    # The raw score is the logit of the booster's probability (no calibrator here).
    proba = plain.predict_proba(cols)
    np.testing.assert_allclose(1 / (1 + np.exp(-raw_score)), proba, rtol=0, atol=TOLERANCE)
    assert np.ptp(contributions[:, -1]) == 0  # one base value for every flight
    assert (np.abs(contributions[:, :-1]).sum(axis=0) > 0).sum() > 10  # many features used


def test_fast_path_contributions_sum_to_the_raw_score_and_equal_the_plain_path(
    plain, fast, cols, raw_score
):
    assert isinstance(fast.estimator, CApiBooster)
    contributions = fast.contributions(cols)
    assert contributions.shape == (len(raw_score), len(FEATURES) + 1)
    np.testing.assert_allclose(contributions.sum(axis=1), raw_score, rtol=0, atol=TOLERANCE)
    fast_logit = logit(fast.estimator.predict(build_features(cols, fast.state)))
    np.testing.assert_allclose(contributions.sum(axis=1), fast_logit, rtol=0, atol=1e-6)
    np.testing.assert_allclose(contributions, plain.contributions(cols), rtol=0, atol=TOLERANCE)
    # One row at a time (as the API asks) gives the same rows.
    one = fast.contributions({k: v[:1] for k, v in cols.items()})
    np.testing.assert_allclose(one, contributions[:1], rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("path", ["plain", "fast"])
def test_group_values_are_the_sums_of_their_features(path, request, cols):
    model: FlightDelayModel = request.getfixturevalue(path)
    contributions = model.contributions(cols)
    groups, grouped = model.group_contributions(contributions)
    assert groups == tuple(group for group, _ in EXPLANATION_GROUPS)  # all 36 features held
    by_name = dict(zip(model.features, contributions[:, :-1].T, strict=True))
    for group, members in EXPLANATION_GROUPS:
        expected = np.sum([by_name[name] for name in members], axis=0)
        got = grouped[:, groups.index(group)]
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE, err_msg=group)
    np.testing.assert_allclose(
        grouped.sum(axis=1), contributions[:, :-1].sum(axis=1), rtol=0, atol=TOLERANCE
    )


@pytest.mark.parametrize("path", ["plain", "fast"])
def test_explain_gives_base_raw_score_and_the_largest_groups(path, request, cols, raw_score):
    model: FlightDelayModel = request.getfixturevalue(path)
    n = 200
    some = {k: v[:n] for k, v in cols.items()}
    explained = model.explain(some, top_k=3)
    _, grouped = model.group_contributions(model.contributions(some))
    assert len(explained) == n
    for why, row, score in zip(explained, grouped, raw_score[:n], strict=True):
        assert abs(why.raw_score - score) < TOLERANCE
        assert len(why.reasons) == 3
        values = [r.value for r in why.reasons]
        assert sorted(np.abs(row))[::-1][:3] == pytest.approx(np.abs(values), abs=TOLERANCE)
        assert abs(values[0]) >= abs(values[1]) >= abs(values[2])
        first = why.reasons[0]
        assert first.text == f"{first.group}: {first.value:+.2f}"
        assert why.as_dict()["reasons"][0] == {
            "group": first.group,
            "value": first.value,
            "text": first.text,
        }
    assert explained[0].base == pytest.approx(model.contributions(some)[0, -1], abs=0)
    assert len({why.reasons[0].group for why in explained}) > 1  # flights differ in why


def test_explain_one_equals_explain_of_the_same_flight(fast, processed_slice):
    row = processed_slice.iloc[[TRAIN_ROWS + 7]]
    record = {k: (None if pd.isna(v) else v) for k, v in row[list(REQUEST_FIELDS)].iloc[0].items()}
    assert fast.explain_one(record, 9) == fast.explain(request_columns(row), 9)[0]
    assert len(fast.explain_one(record, 9).reasons) == 9  # every group


@pytest.mark.parametrize("path", ["plain", "fast"])
@pytest.mark.parametrize("calibrator", [None, PlattCalibrator(a=0.5, b=-1.0)])
def test_predict_and_explain_one_scores_as_predict_one(path, calibrator, request, processed_slice):
    """The API's explained flight takes its probability from the contributions' sum: the
    same probability as predict_one, and the same explanation as explain_one."""
    model: FlightDelayModel = request.getfixturevalue(path)
    model = FlightDelayModel(model.state, model.estimator, model.kind, calibrator)
    for record in request_records(processed_slice.iloc[TRAIN_ROWS : TRAIN_ROWS + 100]):
        p, why = model.predict_and_explain_one(record, 3)
        assert p == pytest.approx(model.predict_one(record), abs=1e-12)
        assert why == model.explain_one(record, 3)


def test_a_calibrator_leaves_the_explanation_on_the_raw_score(plain, cols, raw_score):
    calibrated = FlightDelayModel(
        plain.state, plain.estimator, plain.kind, PlattCalibrator(a=0.5, b=-1.0)
    )
    some = {k: v[:50] for k, v in cols.items()}
    why = calibrated.explain(some, top_k=1)
    assert [w.raw_score for w in why] == pytest.approx(raw_score[:50], abs=TOLERANCE)
    p = calibrated.predict_proba(some)
    sigmoid = 1 / (1 + np.exp(-np.array([w.raw_score for w in why])))
    np.testing.assert_allclose(p, calibrated.calibrator.apply(sigmoid), rtol=0, atol=1e-9)


def test_the_logistic_baseline_is_not_explainable(plain, processed_slice, smoke_cfg, cols):
    train = processed_slice.head(1000)
    X = build_features(request_columns(train), plain.state)
    pipeline = fit_logistic(
        X, train[TARGET].to_numpy(), plain.features, smoke_cfg.train.logistic, 7
    )
    model = FlightDelayModel(plain.state, pipeline, "logistic")
    with pytest.raises(NotExplainable, match="logistic"):
        model.explain({k: v[:1] for k, v in cols.items()})


# The model card's global importance: logged by src.tracking.runs.log_explanations, shown
# by src.registry.card.

CARD_META = {
    "name": "flight-delay",
    "version": 4,
    "alias": "champion",
    "run_id": "r1",
    "model_kind": "lightgbm",
    "config_name": "default",
    "config_hash": "abc",
    "data_manifest_sha256": "d",
    "raw_snapshot_sha256": "s",
    "git_commit": "g",
    "threshold": 0.3,
    "metrics": {"test_roc_auc": 0.75},
}


def test_log_explanations_logs_each_groups_mean_absolute_contribution(
    plain, processed_slice, monkeypatch
):
    logged: dict = {}
    monkeypatch.setattr(runs.mlflow, "log_metrics", logged.update)
    monkeypatch.setattr(runs.mlflow, "log_figure", lambda fig, name: logged.update(plot=name))
    test = processed_slice.iloc[TRAIN_ROWS:]
    runs.log_explanations(plain, test, seed=3)
    sample = test.sample(runs.EXPLAINED_FLIGHTS, random_state=3)
    _, grouped = plain.group_contributions(plain.contributions(request_columns(sample)))
    assert logged.pop("plot") == "plots/contribution_importance.png"
    assert logged.pop(EXPLAINED_METRIC) == runs.EXPLAINED_FLIGHTS < len(test)
    expected = np.abs(grouped).mean(axis=0)
    keys = [CONTRIBUTION_METRIC + group_key(group) for group, _ in EXPLANATION_GROUPS]
    assert list(logged) == keys
    np.testing.assert_allclose(list(logged.values()), expected, rtol=0, atol=TOLERANCE)
    assert logged[CONTRIBUTION_METRIC + "the_plane_s_day"] > 0


def test_the_card_tables_the_groups_largest_first():
    values = {group: 0.01 * (i + 1) for i, (group, _) in enumerate(EXPLANATION_GROUPS)}
    metrics = {CONTRIBUTION_METRIC + group_key(g): v for g, v in values.items()}
    meta = CARD_META | {"metrics": {**CARD_META["metrics"], **metrics, EXPLAINED_METRIC: 2000}}
    card = render_model_card(meta, {"split_served_lead_hours": "2.0"})
    assert "## What moves the score" in card and "over 2,000 test flights" in card
    rows = card[card.index("| Group | Mean absolute contribution (logit) |") :].splitlines()[2:]
    rows = rows[: len(values)]
    expected = sorted(values, key=lambda g: -values[g])
    bars = {g: "█" * round(20 * values[g] / 0.09) for g in values}  # the largest: 20 blocks
    assert rows == [f"| {g} | {values[g]:.4f} | {bars[g]} |" for g in expected]
    assert rows[0] == "| the airport's last two hours | 0.0900 | " + "█" * 20 + " |"
    assert rows[-1].endswith(" | " + "█" * 2 + " |")  # 0.01 of 0.09: 2 blocks of 20


def test_a_card_without_contributions_has_no_importance_section():
    assert "What moves the score" not in render_model_card(CARD_META, {})
