"""Stage 3: train the logistic baseline and the LightGBM candidate; log both to MLflow.

    python -m src.train [--config configs/default.yml] [--early-stopping]

Each model is one MLflow run with params, validation and test metrics (AUC per test month),
plots, the model (signature + input example) and lineage tags. A full run (quality_gate.enforce)
fails when the candidate misses the thresholds (EDA-12).
"""

from __future__ import annotations

import argparse
import logging

import mlflow

from src.common.config import CONFIG_HELP, load_config
from src.common.errors import QualityGateError
from src.common.logs import run_stage
from src.common.paths import SPLITS, get_paths
from src.data.processed import load_processed
from src.model.fit import (
    EARLY_STOPPING_PATIENCE,
    early_stopping_trees,
    fit_model,
    quality_failures,
    score,
)
from src.tracking.runs import log_run
from src.tracking.store import connect, experiment_id, lineage_tags

log = logging.getLogger("train")
ROLES = {"logistic": "baseline", "lightgbm": "candidate"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.train", description=__doc__.split("\n")[0])
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument(
        "--early-stopping",
        action="store_true",
        help="only print the tree count early stopping on the validation split picks; log nothing",
    )
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    splits = {name: load_processed(paths, name) for name in (*SPLITS, "planes")}
    if args.early_stopping:
        best = early_stopping_trees(splits, cfg)
        print(
            f"early stopping on validation (patience {EARLY_STOPPING_PATIENCE}): {best} trees;"
            f" config: n_estimators {cfg.train.lightgbm.n_estimators}"
        )
        return 0
    tags = lineage_tags(paths, cfg)
    models = {kind: fit_model(kind, splits["train"], splits["planes"], cfg) for kind in ROLES}
    uri = connect(paths)
    mlflow.set_experiment(experiment_id=experiment_id(cfg.train.experiment, paths))
    log.info("logging to MLflow at %s, experiment '%s'", uri, cfg.train.experiment)
    results = {}
    for kind, model in models.items():
        results[kind], _ = score(model, splits)
        run_id = log_run(model, results[kind], splits, tags, cfg, ROLES[kind])
        m = results[kind]
        log.info(
            "%s run %s: test ROC AUC %.4f, PR AUC %.4f, log loss %.4f, Brier %.4f",
            kind,
            run_id,
            m["test_roc_auc"],
            m["test_pr_auc"],
            m["test_log_loss"],
            m["test_brier"],
        )
    if cfg.train.quality_gate.enforce:
        failed = quality_failures(results["lightgbm"], cfg.train.quality_gate)
        if failed:
            raise QualityGateError("candidate misses quality thresholds: " + "; ".join(failed))
        log.info("candidate meets every quality threshold (EDA-12)")
    return 0


def main(argv=None) -> int:
    return run_stage("train", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
