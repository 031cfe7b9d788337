"""Typed configs, the quality gate (EDA-12) and the two estimators on real January rows."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from sklearn.metrics import log_loss, roc_auc_score

from src.common.config import (
    LightGBMParams,
    LogisticParams,
    Monitor,
    QualityGate,
    config_from_dict,
    load_config,
    read_raw,
)
from src.common.errors import PipelineError
from src.common.paths import CONFIGS_DIR
from src.common.schema import FEATURES, TARGET
from src.model.features import build_features, fit_state, request_columns
from src.model.fit import early_stopping_trees, fit_lightgbm, fit_logistic, quality_failures

CATEGORICAL = slice(0, 4)  # carrier, origin, dest, manufacturer come first in FEATURES


def write_yaml(tmp_path, data: dict, name: str = "cfg.yml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def smoke_yaml() -> dict:
    return read_raw(CONFIGS_DIR / "smoke.yml")


# ---------------------------------------------------------------- config
def test_both_configs_load(default_cfg, smoke_cfg):
    assert (default_cfg.name, smoke_cfg.name) == ("default", "smoke")
    assert default_cfg.train.quality_gate.enforce and not smoke_cfg.train.quality_gate.enforce
    assert smoke_cfg.split.train_months == [1] and default_cfg.split.test_months == [
        8,
        9,
        10,
        11,
        12,
    ]
    assert default_cfg.hash != smoke_cfg.hash


def test_config_hash_is_stable_and_tracks_values(tmp_path, smoke_yaml, smoke_cfg):
    same = load_config(write_yaml(tmp_path, smoke_yaml, "same.yml"))
    assert same.hash == smoke_cfg.hash == load_config(CONFIGS_DIR / "smoke.yml").hash
    assert len(smoke_cfg.hash) == 64

    smoke_yaml["train"]["lightgbm"]["learning_rate"] = 0.2
    assert load_config(write_yaml(tmp_path, smoke_yaml, "changed.yml")).hash != smoke_cfg.hash


def test_unknown_field_names_the_field(tmp_path, smoke_yaml):
    smoke_yaml["train"]["lightgbm"]["n_estimator"] = 50  # typo of n_estimators
    path = write_yaml(tmp_path, smoke_yaml)
    with pytest.raises(PipelineError, match="field 'train.lightgbm.n_estimator'") as err:
        load_config(path)
    assert str(err.value).startswith(str(path))


def test_missing_config_file_names_the_path(tmp_path):
    path = tmp_path / "nope.yml"
    with pytest.raises(PipelineError, match="config file not found") as err:
        load_config(path)
    assert str(path) in str(err.value)


# ---------------------------------------------------------------- quality gate
GOOD = {
    "validation_roc_auc": 0.77,
    "test_roc_auc": 0.76,
    "test_pr_auc": 0.40,
    "test_log_loss": 0.44,
    "test_brier": 0.14,
    "test_base_rate": 0.21,
    "test_roc_auc_month_08": 0.75,
    "test_roc_auc_month_12": 0.72,
    "test_roc_auc_lead_1h": 0.77,
    "test_roc_auc_lead_24h": 0.70,
}


def test_quality_gate_passes_good_metrics_and_its_bounds():
    gate = QualityGate()
    assert quality_failures(GOOD, gate) == []
    at_bounds = GOOD | {
        "test_roc_auc": gate.max_test_roc_auc,
        "test_log_loss": gate.max_test_log_loss,
        "test_roc_auc_month_12": gate.min_month_roc_auc,
    }
    assert quality_failures(at_bounds, gate) == []
    assert quality_failures(GOOD | {"test_roc_auc": gate.min_test_roc_auc}, gate) == []


def test_quality_gate_lists_every_failing_metric():
    bad = GOOD | {
        "test_roc_auc": 0.785,  # too good: suspect leakage
        "test_pr_auc": 0.30,
        "test_log_loss": 0.4489,  # no better than the model without the store's features
        "test_brier": 0.15,
        "test_roc_auc_month_12": 0.714,
    }
    failures = quality_failures(bad, QualityGate())
    assert failures == [
        "test_roc_auc=0.7850 (needs <= 0.78)",
        "test_pr_auc=0.3000 (needs >= 0.36)",
        "test_log_loss=0.4489 (needs <= 0.4488)",
        "test_brier=0.1500 (needs <= 0.146)",
        "test_roc_auc_month_12=0.7140 (needs >= 0.715)",
    ]
    low = quality_failures(GOOD | {"test_roc_auc": 0.749}, QualityGate())
    assert low == ["test_roc_auc=0.7490 (needs >= 0.75)"]


def test_quality_gate_holds_each_lead_given_to_its_own_floor():
    """No lead floor by default; one given judges that lead's test ROC AUC only."""
    assert QualityGate().min_lead_roc_auc == {}
    gate = QualityGate(min_lead_roc_auc={24: 0.71, 1: 0.77})
    assert quality_failures(GOOD, gate) == ["test_roc_auc_lead_24h=0.7000 (needs >= 0.71)"]
    assert quality_failures(GOOD | {"test_roc_auc_lead_24h": 0.71}, gate) == []


# ---------------------------------------------------------------- estimators
@pytest.fixture(scope="module")
def january(processed_slice, feature_state) -> tuple[np.ndarray, np.ndarray]:
    """~2,000 real flights of early January 2013, featurized as fit_model does."""
    train = processed_slice.head(2000)
    return build_features(request_columns(train), feature_state), train[TARGET].to_numpy()


def test_lightgbm_fit_is_deterministic(january):
    X, y = january
    params = LightGBMParams(n_estimators=20, num_leaves=15, min_child_samples=20)

    first, second = fit_lightgbm(X, y, FEATURES, params, seed=42), fit_lightgbm(
        X, y, FEATURES, params, seed=42
    )

    p1, p2 = first.predict(X), second.predict(X)
    np.testing.assert_array_equal(p1, p2)
    assert first.booster.feature_name() == list(FEATURES)
    assert roc_auc_score(y, p1) > 0.6  # it learned something from real rows
    assert ((p1 > 0) & (p1 < 1)).all()


def test_logistic_handles_missing_category_codes(january, processed_slice, feature_state):
    X, y = january
    assert np.isnan(X[:, CATEGORICAL]).any()  # planes unknown to planes.csv: NaN manufacturer

    model = fit_logistic(X, y, FEATURES, LogisticParams(max_iter=500), seed=42)

    unseen = processed_slice.head(20).assign(carrier="ZZ", origin="SWF", dest="XXX", tailnum=None)
    X_unseen = build_features(request_columns(unseen), feature_state)
    assert np.isnan(X_unseen[:, CATEGORICAL]).all()
    p = model.predict(X_unseen)  # the delay probability (class 1)
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()
    assert roc_auc_score(y, model.predict(X)) > 0.6
    np.testing.assert_array_equal(model.predict(X), model.pipeline.predict_proba(X)[:, 1])


def test_early_stopping_picks_the_validation_minimum(processed_slice, raw_slice):
    """`python -m src.train --early-stopping` (how configs/default.yml's n_estimators was
    chosen): the returned count's validation log loss is no worse than 30 trees later, and
    a fixed-count fit of that many trees is the early-stopped model itself."""
    cut = len(processed_slice) * 2 // 3
    splits = {
        "train": processed_slice.iloc[:cut],
        "validation": processed_slice.iloc[cut:],
        "planes": raw_slice["planes"],
    }
    cfg = load_config(CONFIGS_DIR / "smoke.yml")
    tuning = cfg.train.tuning.model_copy(update={"early_stopping_patience": 30, "max_trees": 300})
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"tuning": tuning})})
    best = early_stopping_trees(splits, cfg)
    assert 1 <= best < 300

    state = fit_state(request_columns(splits["train"]), splits["planes"])
    X_train, X_val = (
        build_features(request_columns(splits[s]), state) for s in ("train", "validation")
    )
    y_train, y_val = splits["train"][TARGET].to_numpy(), splits["validation"][TARGET].to_numpy()
    params = cfg.train.lightgbm
    longer = fit_lightgbm(
        X_train, y_train, FEATURES, params.model_copy(update={"n_estimators": best + 30}), 42
    )
    fixed = fit_lightgbm(
        X_train, y_train, FEATURES, params.model_copy(update={"n_estimators": best}), 42
    )
    at_best = longer.booster.predict(X_val, num_iteration=best, num_threads=1)
    assert log_loss(y_val, at_best) <= log_loss(y_val, longer.predict(X_val))
    np.testing.assert_array_equal(fixed.predict(X_val), at_best)


def test_a_config_written_before_the_ece_alarm_still_loads():
    """Exports and logged runs from before issue 15 name monitor.max_calibration_gap."""
    old = load_config(CONFIGS_DIR / "smoke.yml").model_dump(mode="json")
    old["monitor"] = {"max_auc_drop": 0.02, "max_calibration_gap": 0.07}
    with pytest.warns(UserWarning, match="max_calibration_gap is no longer read"):
        cfg = config_from_dict(old, "models/champion/config.json")
    assert cfg.monitor.max_auc_drop == 0.02
    assert cfg.monitor.max_calibration_error == Monitor().max_calibration_error


def test_smoke_config_is_an_overlay_of_default(smoke_cfg, default_cfg, tmp_path):
    """configs/smoke.yml names default.yml as its base and holds only what differs: a
    section it leaves out is the default's, a key it sets replaces the default's alone."""
    assert "base" in (CONFIGS_DIR / "smoke.yml").read_text()
    assert (
        smoke_cfg.gate == default_cfg.gate and smoke_cfg.drift.columns == default_cfg.drift.columns
    )
    assert (
        smoke_cfg.train.lightgbm.min_child_samples == default_cfg.train.lightgbm.min_child_samples
    )
    assert smoke_cfg.train.lightgbm.learning_rate != default_cfg.train.lightgbm.learning_rate
    # An overlay of an overlay; a list replaces the base's list.
    write_yaml(tmp_path, read_raw(CONFIGS_DIR / "smoke.yml"), "base.yml")
    overlay = write_yaml(tmp_path, {"base": "base.yml", "drift": {"columns": ["origin"]}}, "o.yml")
    cfg = load_config(overlay)
    assert cfg.drift.columns == ["origin"] and cfg.drift.current_months == [3]
    assert cfg.name == "smoke"


def test_an_overlay_naming_a_missing_base_names_it(tmp_path):
    overlay = write_yaml(tmp_path, {"base": "nowhere.yml", "name": "x"}, "o.yml")
    with pytest.raises(PipelineError, match="nowhere.yml: config file not found"):
        load_config(overlay)


def test_train_features_are_checked_against_what_the_code_builds(smoke_yaml, tmp_path):
    smoke_yaml["train"]["features"] = ["carrier", "thunderstorm"]
    with pytest.raises(PipelineError, match=r"train.features.*'thunderstorm'"):
        load_config(write_yaml(tmp_path, smoke_yaml, "bad.yml"))
    smoke_yaml["train"]["features"] = ["carrier", "carrier"]
    with pytest.raises(PipelineError, match="train.features.*once"):
        load_config(write_yaml(tmp_path, smoke_yaml, "twice.yml"))


def test_overlays_that_loop_or_name_no_file_are_one_line_errors(tmp_path):
    write_yaml(tmp_path, {"base": "b.yml", "name": "a"}, "a.yml")
    write_yaml(tmp_path, {"base": "a.yml", "name": "b"}, "b.yml")
    with pytest.raises(PipelineError, match="loop"):
        load_config(tmp_path / "a.yml")
    with pytest.raises(PipelineError, match="field 'base'"):
        load_config(write_yaml(tmp_path, {"base": None, "name": "x"}, "none.yml"))
