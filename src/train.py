"""Stage 3: train the logistic baseline and the LightGBM candidate; log both to MLflow.

    python -m src.train [--config configs/default.yml]

Each model is one MLflow run with params, validation and test metrics (AUC per test month),
plots, the model (signature + input example) and lineage tags. A full run (quality_gate.enforce)
fails when the candidate misses the thresholds (EDA-12).
"""

from __future__ import annotations

import argparse
import logging
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/LightGBM load their thread pools

import lightgbm as lgb  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from src.common.config import (  # noqa: E402
    Config,
    LightGBMParams,
    LogisticParams,
    QualityGate,
    load_config,
)
from src.common.errors import PipelineError, QualityGateError  # noqa: E402
from src.common.io import read_json, sha256_file  # noqa: E402
from src.common.logs import run_stage  # noqa: E402
from src.common.paths import DEFAULT_CONFIG, Paths, get_paths  # noqa: E402
from src.common.schema import CATEGORICAL_FEATURES, FEATURES, REQUEST_FIELDS, TARGET  # noqa: E402
from src.common.tracking import connect, experiment_id, git_commit  # noqa: E402
from src.evaluate import (  # noqa: E402
    auc_by_group,
    binary_metrics,
    calibration_figure,
    importance_figure,
    roc_figure,
)
from src.features import FeatureState, build_features, fit_state  # noqa: E402
from src.model import FlightDelayModel, log_model  # noqa: E402

log = logging.getLogger("train")
N_CAT = len(CATEGORICAL_FEATURES)  # categorical features come first in FEATURES


# ---------------------------------------------------------------- model fitting (pure)
def columns(df: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: df[c].to_numpy() for c in REQUEST_FIELDS}


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


def lightgbm_data(X: np.ndarray, y: np.ndarray, reference=None) -> lgb.Dataset:
    return lgb.Dataset(
        X,
        y,
        feature_name=list(FEATURES),
        categorical_feature=list(range(N_CAT)),
        reference=reference,
    )


def fit_lightgbm(X: np.ndarray, y: np.ndarray, params: LightGBMParams, seed: int) -> lgb.Booster:
    """EDA-11: gradient-boosted trees; categorical features by code, NaN = missing/unseen."""
    data = lightgbm_data(X, y)
    return lgb.train(lightgbm_params(params, seed), data, num_boost_round=params.n_estimators)


EARLY_STOPPING_PATIENCE = 30  # rounds without a better validation log loss


def early_stopping_trees(
    splits: dict, cfg: Config, patience: int = EARLY_STOPPING_PATIENCE, cap: int = 1000
) -> int:
    """How `n_estimators` is chosen (EDA-11): the tree count after which validation log loss
    stopped improving for `patience` rounds, with the config's other parameters."""
    state = fit_state(columns(splits["train"]), splits["planes"])

    def data(name: str, reference=None) -> lgb.Dataset:
        df = splits[name]
        X, y = build_features(columns(df), state), df[TARGET].to_numpy()
        return lightgbm_data(X, y, reference)

    train = data("train")
    booster = lgb.train(
        lightgbm_params(cfg.train.lightgbm, cfg.seed),
        train,
        num_boost_round=cap,
        valid_sets=[data("validation", reference=train)],
        callbacks=[lgb.early_stopping(patience, verbose=False)],
    )
    return booster.best_iteration


def fit_logistic(X: np.ndarray, y: np.ndarray, params: LogisticParams, seed: int):
    """Baseline: one-hot categories (unseen -> all zeros), imputed and scaled numerics."""
    cats = make_pipeline(
        SimpleImputer(strategy="constant", fill_value=-1),
        OneHotEncoder(handle_unknown="ignore"),
    )
    nums = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    pre = ColumnTransformer(
        [("cat", cats, list(range(N_CAT))), ("num", nums, list(range(N_CAT, len(FEATURES))))]
    )
    clf = LogisticRegression(C=params.C, max_iter=params.max_iter, random_state=seed)
    return make_pipeline(pre, clf).fit(X, y)


def fit_model(kind: str, train: pd.DataFrame, planes: pd.DataFrame, cfg: Config):
    """Fit the feature state and one estimator ("logistic" | "lightgbm") on `train`."""
    fitters = {"logistic": fit_logistic, "lightgbm": fit_lightgbm}
    if kind not in fitters:
        raise PipelineError(f"model kind '{kind}': expected one of {sorted(fitters)}")
    state: FeatureState = fit_state(columns(train), planes)
    X, y = build_features(columns(train), state), train[TARGET].to_numpy()
    start = time.perf_counter()
    log.info("fitting %s on %d rows x %d features", kind, *X.shape)
    model = FlightDelayModel(state, fitters[kind](X, y, getattr(cfg.train, kind), cfg.seed), kind)
    log.info("fitted %s in %.1fs", kind, time.perf_counter() - start)
    return model


def fit_models(train: pd.DataFrame, planes: pd.DataFrame, cfg: Config) -> dict:
    return {kind: fit_model(kind, train, planes, cfg) for kind in ("logistic", "lightgbm")}


def score(model: FlightDelayModel, splits: dict[str, pd.DataFrame]) -> tuple[dict, dict]:
    """Validation and test metrics, plus test AUC per month; returns (metrics, test scores)."""
    metrics, preds = {}, {}
    for name in ("validation", "test"):
        df = splits[name]
        preds[name] = model.predict_proba(columns(df))
        for k, v in binary_metrics(df[TARGET].to_numpy(), preds[name]).items():
            metrics[f"{name}_{k}"] = v
    test = splits["test"]
    for month, auc in auc_by_group(test[TARGET].to_numpy(), preds["test"], test["month"]).items():
        metrics[f"test_roc_auc_month_{month:02d}"] = auc
    return metrics, preds["test"]


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
    failed = []
    for key, op, bound in checks:
        value = metrics[key]
        ok = value >= bound if op == ">=" else value <= bound
        if not ok:
            failed.append(f"{key}={value:.4f} (needs {op} {bound})")
    return failed


# ---------------------------------------------------------------- MLflow (I/O)
def lineage_tags(paths: Paths, cfg: Config) -> dict[str, str]:
    manifest_path = paths.processed / "manifest.json"
    manifest = read_json(manifest_path)
    return {
        "git_commit": git_commit(),
        "data_manifest_sha256": sha256_file(manifest_path),
        "raw_snapshot_sha256": manifest["raw_snapshot_sha256"],
        "config_name": cfg.name,
        "config_hash": cfg.hash,
    }


def log_run(model, metrics, test_scores, splits, tags, cfg: Config, role: str | None = None) -> str:
    """One MLflow run for one model; plots only when test scores are given."""
    role = role or ("candidate" if model.kind == "lightgbm" else "baseline")
    params = getattr(cfg.train, model.kind).model_dump()
    with mlflow.start_run(run_name=f"{role}-{model.kind}", tags={**tags, "role": role}) as run:
        mlflow.log_params({"model": model.kind, "seed": cfg.seed, **params})
        mlflow.log_params({f"split_{k}": v for k, v in cfg.split.model_dump().items()})
        mlflow.log_metrics(metrics)
        mlflow.log_dict(cfg.model_dump(), "config.json")
        if test_scores is not None:
            log_figures(model, splits["test"][TARGET].to_numpy(), test_scores)
        info = log_model(model, splits["train"].head(5))
        mlflow.set_tag("model_uri", info.model_uri)
        return run.info.run_id


def log_figures(model: FlightDelayModel, y: np.ndarray, test_scores: np.ndarray) -> None:
    figures = {
        "roc.png": roc_figure(y, {model.kind: test_scores}),
        "calibration.png": calibration_figure(y, {model.kind: test_scores}),
    }
    if model.kind == "lightgbm":
        gains = model.estimator.feature_importance(importance_type="gain")
        figures["feature_importance.png"] = importance_figure(FEATURES, gains)
    for name, fig in figures.items():
        mlflow.log_figure(fig, f"plots/{name}")
        plt.close(fig)


def load_splits(paths: Paths) -> dict[str, pd.DataFrame]:
    splits = {}
    for name in ("train", "validation", "test", "planes"):
        path = paths.processed / f"{name}.parquet"
        if not path.is_file():
            raise PipelineError(f"{path}: not found; run `python -m src.preprocess` first")
        splits[name] = pd.read_parquet(path)
    return splits


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.train", description=__doc__.split("\n")[0])
    p.add_argument("--config", default=DEFAULT_CONFIG, help="pipeline config YAML")
    p.add_argument(
        "--early-stopping",
        action="store_true",
        help="only print the tree count early stopping on the validation split picks; log nothing",
    )
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    splits = load_splits(paths)
    if args.early_stopping:
        best = early_stopping_trees(splits, cfg)
        print(
            f"early stopping on validation (patience {EARLY_STOPPING_PATIENCE}): {best} trees;"
            f" config: n_estimators {cfg.train.lightgbm.n_estimators}"
        )
        return 0
    tags = lineage_tags(paths, cfg)
    models = fit_models(splits["train"], splits["planes"], cfg)
    uri = connect(paths)
    mlflow.set_experiment(experiment_id=experiment_id(cfg.train.experiment, paths))
    log.info("logging to MLflow at %s, experiment '%s'", uri, cfg.train.experiment)
    results = {}
    for kind, model in models.items():
        metrics, test_scores = score(model, splits)
        run_id = log_run(model, metrics, test_scores, splits, tags, cfg)
        results[kind] = metrics
        log.info(
            "%s run %s: test ROC AUC %.4f, PR AUC %.4f, log loss %.4f, Brier %.4f",
            kind,
            run_id,
            metrics["test_roc_auc"],
            metrics["test_pr_auc"],
            metrics["test_log_loss"],
            metrics["test_brier"],
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
