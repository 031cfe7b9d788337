"""Fitting and scoring the model (pure: frames in, a FlightDelayModel or metrics out). The
logistic baseline and the LightGBM candidate differ only in the estimator."""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from src.common.config import Config, LightGBMParams, LogisticParams, QualityGate
from src.common.errors import PipelineError
from src.common.schema import OUTCOME_KEY, TARGET
from src.model.calibration import calibrate, later_log_losses
from src.model.evaluate import auc_by_group, binary_metrics
from src.model.features import (
    build_features,
    categorical_positions,
    fit_state,
    request_columns,
)
from src.model.model import Estimator, FlightDelayModel, LightGBMBooster, LogisticEstimator

log = logging.getLogger(__name__)


def lightgbm_params(params: LightGBMParams, seed: int) -> dict:
    p = params.model_dump()
    return {
        "objective": "binary",
        "learning_rate": p.pop("learning_rate"),
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
        "bagging_fraction": p.pop("subsample"),
        "bagging_freq": p.pop("subsample_freq"),
        "feature_fraction": p.pop("colsample_bytree"),
        **{k: v for k, v in p.items() if k != "n_estimators"},
    }


def lightgbm_data(X: np.ndarray, y: np.ndarray, features, reference=None) -> lgb.Dataset:
    return lgb.Dataset(
        X,
        y,
        feature_name=list(features),
        categorical_feature=categorical_positions(features),
        reference=reference,
    )


def fit_lightgbm(
    X: np.ndarray, y: np.ndarray, features, params: LightGBMParams, seed: int
) -> LightGBMBooster:
    """EDA-11: gradient-boosted trees; categorical features by code, NaN = missing/unseen."""
    data = lightgbm_data(X, y, features)
    booster = lgb.train(lightgbm_params(params, seed), data, num_boost_round=params.n_estimators)
    return LightGBMBooster(booster)


def fit_logistic(
    X: np.ndarray, y: np.ndarray, features, params: LogisticParams, seed: int
) -> LogisticEstimator:
    """Baseline: one-hot categories (unseen -> all zeros), imputed and scaled numerics."""
    cats = make_pipeline(
        SimpleImputer(strategy="constant", fill_value=-1),
        OneHotEncoder(handle_unknown="ignore"),
    )
    nums = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = categorical_positions(features)
    numeric = [i for i in range(len(features)) if i not in categorical]
    pre = ColumnTransformer([("cat", cats, categorical), ("num", nums, numeric)])
    clf = LogisticRegression(C=params.C, max_iter=params.max_iter, random_state=seed)
    return LogisticEstimator(make_pipeline(pre, clf).fit(X, y))


# kind -> fit(X, y, the feature names, that kind's params from cfg.train, seed)
FITTERS: dict[str, Callable[..., Estimator]] = {"logistic": fit_logistic, "lightgbm": fit_lightgbm}


def one_lead_each(examples: pd.DataFrame) -> pd.DataFrame:
    """Each flight once, at one of its leads: the one whose (flight, lead) hash is lowest.
    A flight's examples at its leads share one outcome and most features, so one of them,
    at a lead spread evenly over the flights, teaches nearly as much at a fifth of the cost
    (docs/feature-store.md: examples and leads). Deterministic, and a frame already cut to
    one lead a flight is kept whole."""
    flight = pd.util.hash_pandas_object(examples[list(OUTCOME_KEY)], index=False).to_numpy()
    keys = [*OUTCOME_KEY, "lead_hours"]
    row = pd.util.hash_pandas_object(examples[keys], index=False).to_numpy()
    order = np.lexsort((row, flight))
    first = np.r_[True, flight[order][1:] != flight[order][:-1]]
    return examples.iloc[np.sort(order[first])]


def fit_model(kind: str, train: pd.DataFrame, planes: pd.DataFrame, cfg: Config):
    """Fit the feature state and one estimator ("logistic" | "lightgbm") on `train`, each
    flight at one of its leads (`one_lead_each`)."""
    if kind not in FITTERS:
        raise PipelineError(f"model kind '{kind}': expected one of {sorted(FITTERS)}")
    train = one_lead_each(train)
    cols = request_columns(train)
    state = fit_state(cols, planes, cfg.train.features)
    X, y = build_features(cols, state), train[TARGET].to_numpy()
    start = time.perf_counter()
    log.info("fitting %s on %d rows x %d features", kind, *X.shape)
    estimator = FITTERS[kind](X, y, state.features, getattr(cfg.train, kind), cfg.seed)
    log.info("fitted %s in %.1fs", kind, time.perf_counter() - start)
    return FlightDelayModel(state, estimator, kind)


def fit_and_calibrate(kind: str, splits: dict, cfg: Config) -> tuple[FlightDelayModel, dict]:
    """The training recipe: `fit_model` on the train split, then a post-hoc calibrator chosen
    on the validation split only (src/model/calibration.py). Returns (model, the
    calibration report). src.train, src.reproduce and the loop's first champion all use it."""
    model = fit_model(kind, splits["train"], splits["planes"], cfg)
    calibrated, report = calibrate(model, splits["validation"], cfg.train.calibration)
    later = later_log_losses(report["metrics"])  # raw first, then the config's methods
    figures = ", ".join(f"{name} {loss:.4f}" for name, loss in later.items())
    log.info(
        "%s calibrator: %s (log loss on the later half of validation: %s)",
        kind,
        report["method"] or "none",
        figures,
    )
    return calibrated, report


def early_stopped(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    planes: pd.DataFrame,
    cfg: Config,
    patience: int,
    cap: int = 1000,
) -> tuple[FlightDelayModel, int]:
    """LightGBM on `train` with the config's parameters, stopped when log loss on `holdout`
    has not improved for `patience` rounds (EDA-11); returns (the model cut at its best tree
    count, that count). Trained as fit_model trains: each flight at one of its leads."""
    train = one_lead_each(train)
    state = fit_state(request_columns(train), planes, cfg.train.features)

    def data(df: pd.DataFrame, reference=None) -> lgb.Dataset:
        X = build_features(request_columns(df), state)
        return lightgbm_data(X, df[TARGET].to_numpy(), state.features, reference)

    fitted = data(train)
    booster = lgb.train(
        lightgbm_params(cfg.train.lightgbm, cfg.seed),
        fitted,
        num_boost_round=cap,
        valid_sets=[data(holdout, reference=fitted)],
        callbacks=[lgb.early_stopping(patience, verbose=False)],
    )
    trees = booster.best_iteration
    if trees == cap:
        log.warning("early stopping reached the cap of %d trees: raise it (max_trees)", cap)
    cut = lgb.Booster(model_str=booster.model_to_string(num_iteration=trees))
    return FlightDelayModel(state, LightGBMBooster(cut), "lightgbm"), trees


def early_stopping_trees(splits: dict, cfg: Config) -> int:
    """The tree count early stopping on the validation split picks with the config's other
    parameters (patience and cap: `train.tuning`, as `--tune` uses on each fold). EDA-11:
    `n_estimators` is that count; `--tune` writes it from its last fold."""
    stop = (cfg.train.tuning.early_stopping_patience, cfg.train.tuning.max_trees)
    return early_stopped(splits["train"], splits["validation"], splits["planes"], cfg, *stop)[1]


def with_lightgbm(cfg: Config, params: LightGBMParams) -> Config:
    """`cfg` with LightGBM's parameters replaced."""
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"lightgbm": params})})


def with_trees(cfg: Config, trees: int) -> Config:
    """`cfg` with LightGBM's tree count replaced."""
    return with_lightgbm(cfg, cfg.train.lightgbm.model_copy(update={"n_estimators": trees}))


@dataclass(frozen=True)
class Retrained:
    """The monitoring cycle's retraining recipe, both steps. `backtest`: trained on every
    labelled month but the latest, early-stopped on it; scored there, the gate's evidence.
    `model`: the same recipe refit on every labelled month, the challenger (freshness is the
    point: docs/monitoring.md)."""

    backtest: FlightDelayModel
    model: FlightDelayModel  # uncalibrated: no labelled month is left to choose one on
    trees: int
    latest_month: int


def retrain(
    labelled: pd.DataFrame, planes: pd.DataFrame, cfg: Config, patience: int, cap: int = 1000
) -> Retrained:
    """The recipe on `labelled` (every labelled month, 2013)."""
    latest = int(labelled["month"].max())
    earlier, holdout = labelled[labelled["month"] < latest], labelled[labelled["month"] == latest]
    if earlier.empty:
        raise PipelineError(
            f"retraining needs two labelled months (one to stop early on): only 2013-{latest:02d}"
        )
    backtest, trees = early_stopped(earlier, holdout, planes, cfg, patience, cap)
    log.info(
        "early stopping on 2013-%02d: %d trees; refitting on every labelled month", latest, trees
    )
    model = fit_model("lightgbm", labelled, planes, with_trees(cfg, trees))
    return Retrained(backtest, model, trees, latest)


def score(
    model: FlightDelayModel, splits: dict[str, pd.DataFrame], served_lead: float
) -> tuple[dict, np.ndarray]:
    """Validation and test metrics at the served lead (each flight once, as it is served),
    test ROC AUC per month there and at every lead; returns (metrics, test scores)."""
    metrics, preds = {}, {}
    for name in ("validation", "test"):
        df = splits[name]
        preds[name] = model.predict_proba(request_columns(df))
        served = (df["lead_hours"] == served_lead).to_numpy()
        y = df[TARGET].to_numpy()
        for k, v in binary_metrics(y[served], preds[name][served]).items():
            metrics[f"{name}_{k}"] = v
    test, p = splits["test"], preds["test"]
    y, served = test[TARGET].to_numpy(), (test["lead_hours"] == served_lead).to_numpy()
    months = test["month"].to_numpy()[served]
    for month, auc in auc_by_group(y[served], p[served], months).items():
        metrics[f"test_roc_auc_month_{month:02d}"] = auc
    for lead, auc in auc_by_group(y, p, test["lead_hours"].to_numpy()).items():
        metrics[f"test_roc_auc_lead_{lead:g}h"] = auc
    return metrics, p


def quality_failures(metrics: dict, gate: QualityGate) -> list[str]:
    """Every threshold (EDA-12) the metrics miss, as readable strings."""
    checks = [
        ("test_roc_auc", ">=", gate.min_test_roc_auc),
        ("test_roc_auc", "<=", gate.max_test_roc_auc),
        ("test_pr_auc", ">=", gate.min_test_pr_auc),
        ("test_log_loss", "<=", gate.max_test_log_loss),
        ("test_brier", "<=", gate.max_test_brier),
    ]
    checks += [(k, ">=", gate.min_month_roc_auc) for k in metrics if "_month_" in k]
    checks += [(f"test_roc_auc_lead_{h:g}h", ">=", b) for h, b in gate.min_lead_roc_auc.items()]
    passes = {">=": operator.ge, "<=": operator.le}
    return [
        f"{key}={metrics[key]:.4f} (needs {op} {bound})"
        for key, op, bound in checks
        if not passes[op](metrics[key], bound)
    ]
