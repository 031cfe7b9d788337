"""Time-series cross-validation and Optuna's search over LightGBM's parameters (no MLflow).

Folds expand month by month inside the training window (`split.cv_months` [4, 5]: April
validated by a fit on January-March, May by one on January-April). Each fold early-stops,
so a trial is a recipe (parameters + early stopping), scored by its mean fold log loss. The
test months are never read here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd
import yaml
from sklearn.metrics import log_loss, roc_auc_score

from src.common.config import Config, LightGBMParams
from src.common.errors import PipelineError
from src.common.schema import TARGET
from src.model.features import request_columns
from src.model.fit import early_stopped, with_lightgbm
from src.model.gate import bootstrap_indices, paired_bootstrap_auc_gain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fold:
    month: int  # the validated month
    train: pd.DataFrame  # every earlier month of the training window
    validation: pd.DataFrame


@dataclass(frozen=True)
class FoldResult:
    month: int
    trees: int  # where early stopping stopped
    log_loss: float
    roc_auc: float
    y: np.ndarray
    p: np.ndarray


def cv_folds(data: pd.DataFrame, cfg: Config) -> list[Fold]:
    """The config's expanding monthly folds over `data` (the train and validation splits)."""
    split = cfg.split
    if not split.cv_months:
        raise PipelineError(f"config '{cfg.name}': split.cv_months is empty; --tune needs folds")
    window = data[data["month"].isin([*split.train_months, *split.validation_months])]
    folds = []
    for month in split.cv_months:
        fold = Fold(month, window[window["month"] < month], window[window["month"] == month])
        if fold.train.empty or fold.validation.empty:
            raise PipelineError(f"cv fold {month}: no rows to train on or to validate")
        folds.append(fold)
    return folds


def cross_validate(folds: list[Fold], planes: pd.DataFrame, cfg: Config) -> list[FoldResult]:
    """The config's LightGBM recipe on every fold: fit, early-stop on the fold's month, score."""
    stop, results = (cfg.train.tuning.early_stopping_patience, cfg.train.tuning.max_trees), []
    for fold in folds:
        model, trees = early_stopped(fold.train, fold.validation, planes, cfg, *stop)
        y = fold.validation[TARGET].to_numpy()
        p = model.predict_proba(request_columns(fold.validation))
        loss, auc = float(log_loss(y, p, labels=[0, 1])), float(roc_auc_score(y, p))
        results.append(FoldResult(fold.month, trees, loss, auc, y, p))
    return results


def mean_log_loss(results: list[FoldResult]) -> float:
    return float(np.mean([r.log_loss for r in results]))


def suggest(trial: optuna.Trial, base: LightGBMParams) -> LightGBMParams:
    """The search space. The tree count is not searched: early stopping sets it per fold."""
    return base.model_copy(
        update={
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 15, 255, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 10, 500, log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 10.0, log=True),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        }
    )


# Called after each trial with (trial number, its parameters, its fold results).
OnTrial = Callable[[int, LightGBMParams, list[FoldResult]], None]


def search(
    folds: list[Fold], planes: pd.DataFrame, cfg: Config, trials: int, on_trial: OnTrial
) -> optuna.Study:
    """`trials` trials of TPE seeded with the config's seed: the same search every run."""
    sampler = optuna.samplers.TPESampler(seed=cfg.seed)
    study = optuna.create_study(direction="minimize", sampler=sampler, study_name=cfg.name)

    def objective(trial: optuna.Trial) -> float:
        start = time.perf_counter()
        params = suggest(trial, cfg.train.lightgbm)
        results = cross_validate(folds, planes, with_lightgbm(cfg, params))
        score = mean_log_loss(results)
        on_trial(trial.number, params, results)
        best_so_far = min([score, *(t.value for t in study.trials if t.value is not None)])
        trees, seconds = [r.trees for r in results], time.perf_counter() - start
        message = "trial %d/%d: mean fold log loss %.5f (best %.5f), trees %s, %.0fs"
        log.info(message, trial.number + 1, trials, score, best_so_far, trees, seconds)
        return score

    study.optimize(objective, n_trials=trials)
    return study


def best_recipe(
    study: optuna.Study, folds: list[Fold], planes: pd.DataFrame, cfg: Config
) -> tuple[LightGBMParams, list[FoldResult]]:
    """The best trial's parameters and its fold results (refit: trials are deterministic).
    Its tree count is the one early stopping picked on the last fold, which trains on the
    months before the last cv month, as the final model does when that month is the
    validation month (configs/default.yml: January-June, July)."""
    params = cfg.train.lightgbm.model_copy(update=study.best_params)
    results = cross_validate(folds, planes, with_lightgbm(cfg, params))
    return params.model_copy(update={"n_estimators": results[-1].trees}), results


@dataclass(frozen=True)
class Comparison:
    """The best trial against the current configuration, on the same fold rows (pooled)."""

    current_log_loss: float  # mean over folds
    best_log_loss: float
    log_loss_change: float  # best - current on the pooled rows; negative = better
    log_loss_low: float  # (1 - alpha) paired bootstrap interval of that change
    log_loss_high: float
    auc_gain: float  # best - current, pooled rows, with its paired bootstrap interval
    auc_low: float
    auc_high: float

    @property
    def wins(self) -> bool:
        """Adopt only a recipe whose log loss is lower beyond the bootstrap's noise."""
        return self.log_loss_high < 0


def compare(
    current: list[FoldResult], best: list[FoldResult], n_boot: int, seed: int, alpha: float
) -> Comparison:
    """Paired bootstrap over the pooled fold rows: the same resampled rows score both."""
    y = np.concatenate([r.y for r in current])
    p_current, p_best = (np.concatenate([r.p for r in rs]) for rs in (current, best))
    change = _row_log_loss(y, p_best) - _row_log_loss(y, p_current)
    changes = np.concatenate(
        [change[idx].mean(axis=1) for idx in bootstrap_indices(y, n_boot, seed)]
    )
    low, high = np.quantile(changes, [alpha / 2, 1 - alpha / 2])
    gain, auc_low, auc_high = paired_bootstrap_auc_gain(y, p_current, p_best, n_boot, seed, alpha)
    return Comparison(
        current_log_loss=mean_log_loss(current),
        best_log_loss=mean_log_loss(best),
        log_loss_change=float(change.mean()),
        log_loss_low=float(low),
        log_loss_high=float(high),
        auc_gain=gain,
        auc_low=auc_low,
        auc_high=auc_high,
    )


class _ConfigDumper(yaml.SafeDumper):
    """Blocks for sections, one line for lists of months: how configs/*.yml are written."""


_ConfigDumper.add_representer(
    list, lambda dumper, v: dumper.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def _row_log_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def verdict(cfg: Config, params: LightGBMParams, comparison: Comparison) -> str:
    """What to do with the best trial: adopt it only if it wins beyond the bootstrap's noise.
    The best trial is already adopted (a re-run) when its parameters are the config's, the
    tree count aside (early stopping sets it, not the search)."""
    searched = [p.model_dump(exclude={"n_estimators"}) for p in (params, cfg.train.lightgbm)]
    if searched[0] == searched[1]:
        return "ALREADY ADOPTED: the best trial is the current configuration"
    return "WINS: adopt" if comparison.wins else "does not win: keep the current parameters"


def tuned_config_yaml(
    cfg: Config, params: LightGBMParams, comparison: Comparison, trials: int
) -> str:
    """The config with the tuned parameters, headed by the evidence for (or against) adopting
    them. Commit it; copy its train.lightgbm into configs/default.yml only if it wins. The
    best of many trials is judged on the rows it was picked on, so the fold gain flatters it
    a little (docs/model-development.md has how much it kept on the test months)."""
    c = comparison
    header = [
        f"# Written by `python -m src.train --tune {trials}` from config '{cfg.name}'",
        f"# (Optuna TPE, seed {cfg.seed}; folds: cv months {cfg.split.cv_months}).",
        f"# Mean fold log loss: best trial {c.best_log_loss:.5f}, current config"
        f" {c.current_log_loss:.5f}.",
        f"# Paired bootstrap on the pooled fold rows: log loss change {c.log_loss_change:+.5f}"
        f" (interval {c.log_loss_low:+.5f}..{c.log_loss_high:+.5f}),"
        f" ROC AUC gain {c.auc_gain:+.4f} ({c.auc_low:+.4f}..{c.auc_high:+.4f}).",
        f"# Verdict: {verdict(cfg, params, c)}. n_estimators: early stopping on the last fold.",
    ]
    tuned = with_lightgbm(cfg, params).model_copy(update={"name": f"{cfg.name}-tuned"})
    body = yaml.dump(tuned.model_dump(mode="json"), Dumper=_ConfigDumper, sort_keys=False)
    return "\n".join(header) + "\n" + body
