"""The tuning search in MLflow: one parent run (the best parameters, the comparison with the
current config, Optuna's plots, the config written), one nested run per trial (its parameters
and per-fold figures: `fold_04_log_loss`, ...)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import mlflow
import optuna
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from optuna.visualization import matplotlib as optuna_plots

from src.common.config import LightGBMParams
from src.model.tuning import Comparison, FoldResult, OnTrial, mean_log_loss

TUNED_CONFIG_ARTIFACT = "tuned_config.yml"


@contextmanager
def tuning_run(tags: dict, trials: int) -> Iterator[str]:
    """The parent run; yields its id."""
    with mlflow.start_run(run_name="tune-lightgbm", tags={**tags, "role": "tuning"}) as run:
        mlflow.log_params({"trials": trials, "sampler": "TPE"})
        yield run.info.run_id


def fold_metrics(results: list[FoldResult]) -> dict[str, float]:
    metrics = {"mean_fold_log_loss": mean_log_loss(results)}
    for r in results:
        for figure in ("log_loss", "roc_auc", "trees"):
            metrics[f"fold_{r.month:02d}_{figure}"] = getattr(r, figure)
    return metrics


def trial_logger(tags: dict) -> OnTrial:
    """What `src.model.tuning.search` calls after each trial: one nested run with its figures."""

    def log_trial(number: int, params: LightGBMParams, results: list[FoldResult]) -> None:
        with mlflow.start_run(
            run_name=f"trial-{number:03d}", nested=True, tags={**tags, "role": "tuning-trial"}
        ):
            mlflow.log_params({"trial": number, **params.model_dump(exclude={"n_estimators"})})
            mlflow.log_metrics(fold_metrics(results))

    return log_trial


def log_outcome(
    study: optuna.Study,
    best: LightGBMParams,
    current: list[FoldResult],
    comparison: Comparison,
    config_yaml: str,
) -> None:
    mlflow.log_params({f"best_{k}": v for k, v in best.model_dump().items()})
    mlflow.log_metrics(
        {
            **{f"current_{k}": v for k, v in fold_metrics(current).items()},
            "best_mean_fold_log_loss": comparison.best_log_loss,
            "log_loss_change": comparison.log_loss_change,
            "log_loss_change_low": comparison.log_loss_low,
            "log_loss_change_high": comparison.log_loss_high,
            "roc_auc_gain": comparison.auc_gain,
            "roc_auc_gain_low": comparison.auc_low,
            "roc_auc_gain_high": comparison.auc_high,
            "wins": float(comparison.wins),
        }
    )
    mlflow.set_tag("best_trial", str(study.best_trial.number))
    mlflow.log_text(config_yaml, TUNED_CONFIG_ARTIFACT)
    log_study_plots(study)


def log_study_plots(study: optuna.Study) -> None:
    """Optuna's history and (with two trials or more) parameter-importance plots."""
    plots: dict[str, Callable[[optuna.Study], Axes]] = {
        "optuna_history.png": optuna_plots.plot_optimization_history
    }
    if len(study.trials) > 1:
        plots["optuna_importance.png"] = optuna_plots.plot_param_importances
    with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, plot in plots.items():
            figure = plot(study).get_figure(root=True)  # pyplot's figure: closed once logged
            mlflow.log_figure(figure, f"plots/{name}")
            plt.close(figure)
