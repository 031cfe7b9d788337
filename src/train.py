"""Stage 3: train the logistic baseline and the LightGBM candidate; log both to MLflow.

Each model is fit on the train split, calibrated on the validation split and logged as one
run (docs/model-development.md). A full run (quality_gate.enforce) fails when the candidate
misses the thresholds (EDA-12). `--tune N` trains nothing for the registry: it searches the
parameters over time-series folds and writes the best recipe as a config, with its evidence.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import mlflow
import optuna
import pandas as pd

from src.common.config import CONFIG_HELP, load_config
from src.common.errors import QualityGateError
from src.common.io import write_atomic
from src.common.logs import run_stage
from src.common.paths import SPLITS, TUNED_CONFIG, get_paths
from src.data.processed import load_processed
from src.model import tuning
from src.model.fit import early_stopping_trees, fit_and_calibrate, quality_failures, score
from src.tracking.runs import log_run
from src.tracking.store import connect, experiment_id, lineage_tags
from src.tracking.tuning import log_outcome, trial_logger, tuning_run

log = logging.getLogger("train")
ROLES = {"logistic": "baseline", "lightgbm": "candidate"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.train", description=__doc__.split("\n")[0])
    p.add_argument("--config", help=CONFIG_HELP)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--early-stopping",
        action="store_true",
        help="only print the tree count early stopping on the validation split picks; log nothing",
    )
    mode.add_argument(
        "--tune",
        type=int,
        metavar="N",
        help="run N trials of the parameter search on the time-series folds (no model logged)",
    )
    p.add_argument(
        "--tune-out",
        type=Path,
        default=TUNED_CONFIG,
        help="where --tune writes the best recipe as a config (default: configs/tuned.yml)",
    )
    args = p.parse_args(argv)
    if args.tune is not None and args.tune < 1:
        p.error(f"--tune: need at least 1 trial, got {args.tune}")
    folder = args.tune_out.parent
    if args.tune and not (folder.is_dir() and os.access(folder, os.W_OK)):
        p.error(f"--tune-out {args.tune_out}: {folder} is not a writable folder")  # not after it
    return args


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    # Tuning and early stopping never read the test split: their choices cannot see it.
    names = ("train", "validation") if args.tune or args.early_stopping else SPLITS
    splits = {name: load_processed(paths, name) for name in (*names, "planes")}
    if args.early_stopping:
        best = early_stopping_trees(splits, cfg)
        print(
            f"early stopping on validation (patience"
            f" {cfg.train.tuning.early_stopping_patience}): {best} trees;"
            f" config: n_estimators {cfg.train.lightgbm.n_estimators}"
        )
        return 0
    if args.tune:
        return tune(splits, cfg, paths, args.tune, args.tune_out)
    tags = lineage_tags(paths, cfg)
    models = {kind: fit_and_calibrate(kind, splits, cfg) for kind in ROLES}
    uri = connect(paths)
    mlflow.set_experiment(experiment_id=experiment_id(cfg.train.experiment, paths))
    log.info("logging to MLflow at %s, experiment '%s'", uri, cfg.train.experiment)
    results = {}
    for kind, (model, calibration) in models.items():
        results[kind], _ = score(model, splits, cfg.split.served_lead_hours)
        metrics = results[kind] | calibration["metrics"]
        run_id = log_run(model, metrics, splits, tags, cfg, ROLES[kind])
        test = [results[kind][f"test_{k}"] for k in ("roc_auc", "pr_auc", "log_loss", "brier")]
        message = "%s run %s: test ROC AUC %.4f, PR AUC %.4f, log loss %.4f, Brier %.4f"
        log.info(message, kind, run_id, *test)
    if cfg.train.quality_gate.enforce:
        failed = quality_failures(results["lightgbm"], cfg.train.quality_gate)
        if failed:
            raise QualityGateError("candidate misses quality thresholds: " + "; ".join(failed))
        log.info("candidate meets every quality threshold (EDA-12)")
    return 0


def tune(splits: dict, cfg, paths, trials: int, out: Path) -> int:
    folds = tuning.cv_folds(pd.concat([splits["train"], splits["validation"]]), cfg)
    log.info("tuning: %d trials on folds %s", trials, [f.month for f in folds])
    tags = lineage_tags(paths, cfg)
    connect(paths)
    mlflow.set_experiment(experiment_id=experiment_id(cfg.train.experiment, paths))
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours
    with tuning_run(tags, trials) as run_id:
        current = tuning.cross_validate(folds, splits["planes"], cfg)
        study = tuning.search(folds, splits["planes"], cfg, trials, trial_logger(tags))
        best_params, best_results = tuning.best_recipe(study, folds, splits["planes"], cfg)
        n_boot, alpha = cfg.train.tuning.bootstrap, cfg.gate.alpha
        comparison = tuning.compare(current, best_results, n_boot, cfg.seed, alpha)
        text = tuning.tuned_config_yaml(cfg, best_params, comparison, trials)
        write_atomic(out, lambda p: p.write_text(text))
        log_outcome(study, best_params, current, comparison, text)
    print(
        f"tuning run {run_id}: best mean fold log loss {comparison.best_log_loss:.5f} vs current"
        f" {comparison.current_log_loss:.5f} (change {comparison.log_loss_change:+.5f},"
        f" interval {comparison.log_loss_low:+.5f}..{comparison.log_loss_high:+.5f}):"
        f" {tuning.verdict(cfg, best_params, comparison)}; written to {out}"
    )
    return 0


def main(argv=None) -> int:
    return run_stage("train", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
