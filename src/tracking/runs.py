"""MLflow runs: log a FlightDelayModel with its metrics, plots and lineage; load one back.
The logged pyfunc carries exactly the code its predict runs (MODEL_CODE)."""

from __future__ import annotations

import re
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from src.common.config import Config
from src.common.paths import MODEL_DATA, ROOT
from src.common.schema import PREDICTION, REQUEST, REQUEST_FIELDS, TARGET
from src.model import model as model_module
from src.model.evaluate import (
    bar_figure,
    calibration_figure,
    expected_calibration_error,
    importance_figure,
    reliability_bins,
    roc_figure,
)
from src.model.features import group_key, request_columns
from src.model.model import FlightDelayModel, LightGBMBooster
from src.model.slices import ALPHA, FIGURES, as_records, slice_table

RUNTIME_PACKAGES = ("mlflow", "lightgbm", "scikit-learn", "numpy", "pandas")
# Global importance (log_explanations; the model card reads them): test_contribution_<group
# key> is a group's mean absolute contribution over the test flights EXPLAINED_METRIC counts.
CONTRIBUTION_METRIC = "test_contribution_"
EXPLAINED_METRIC = "test_explained_flights"
# The modules the logged model imports to load and predict: nothing else (no stages, no
# benchmark) goes into its code folder.
MODEL_CODE = (
    "src/__init__.py",
    "src/common/__init__.py",
    "src/common/errors.py",
    "src/common/schema.py",
    "src/model/__init__.py",
    "src/model/features.py",
    "src/model/model.py",
)
CONFIG_ARTIFACT = "config.json"  # the run's whole config, as logged (src.reproduce reads it)
SLICES_DIR = "slices"
SLICES_ARTIFACT = f"{SLICES_DIR}/slices.json"  # the test slice table (the model card reads it)
SLICE_METRIC = "test_slice_"  # test_slice_<dimension>_<slice>_<figure>
# The test reliability diagram's bins as data: calibration.png's points, for the model card's
# folder and the dashboard, which draws them (src/registry/export.py copies it there).
RELIABILITY_ARTIFACT = "calibration/reliability.json"
# MLflow types for the schema's kinds: what the public data holds (int64 columns are long).
MLFLOW_TYPES = {"int": "long", "float": "double", "str": "string"}


def signature() -> ModelSignature:
    """Derived from the request schema: nullable fields (tailnum, weather) are optional."""
    inputs = Schema(
        [ColSpec(MLFLOW_TYPES[c.kind], c.name, required=not c.nullable) for c in REQUEST]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double", PREDICTION)]))


def log_model(model: FlightDelayModel, example: pd.DataFrame):
    """Log as an MLflow pyfunc: the model file, its loader, its code, signature and example."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / Path(MODEL_DATA).name
        data.write_bytes(model_module.to_bytes(model))
        for module in MODEL_CODE:
            (Path(tmp) / module).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / module, Path(tmp) / module)
        return mlflow.pyfunc.log_model(
            name="model",
            loader_module=model_module.__name__,
            data_path=str(data),
            code_paths=[str(Path(tmp) / "src")],
            signature=signature(),
            input_example=example[list(REQUEST_FIELDS)],
            # Pinned from the running environment (skips MLflow's slow requirement inference).
            pip_requirements=[f"{p}=={version(p)}" for p in RUNTIME_PACKAGES],
        )


def load_logged_model(model_uri: str, booster=LightGBMBooster.from_text) -> FlightDelayModel:
    """A logged or registered model (runs:/..., models:/name@alias) read by its own loader."""
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        return model_module.load(Path(local) / MODEL_DATA, booster)


def log_run(model, metrics: dict, splits: dict, tags: dict, cfg: Config, role: str) -> str:
    """One MLflow run for one model: params, metrics, config, the model; plots and the
    slice table when the splits hold a test set. Returns the run id."""
    params = getattr(cfg.train, model.kind).model_dump()
    with mlflow.start_run(run_name=f"{role}-{model.kind}", tags={**tags, "role": role}) as run:
        mlflow.log_params({"model": model.kind, "seed": cfg.seed, **params})
        mlflow.log_params({"features": ",".join(model.features)})  # ordered: the model card's
        mlflow.log_params({"calibrator": model.calibrator.method if model.calibrator else "none"})
        mlflow.log_params({f"split_{k}": v for k, v in cfg.split.model_dump().items()})
        mlflow.log_metrics(metrics)
        mlflow.log_dict(cfg.model_dump(), CONFIG_ARTIFACT)
        if "test" in splits:  # at the served lead: each flight once, as it is served
            test = splits["test"]
            test = test[test["lead_hours"] == cfg.split.served_lead_hours]
            scores = model.predict_proba(request_columns(test))  # scored once, read twice
            log_figures(model, test[TARGET].to_numpy(), scores)
            log_slices(model, test, scores, cfg)
            log_explanations(model, test, cfg.seed)
        info = log_model(model, splits["train"].head(5))
        mlflow.set_tag("model_uri", info.model_uri)
        return run.info.run_id


def log_figures(model: FlightDelayModel, y: np.ndarray, scores: np.ndarray) -> None:
    figures = {
        "roc.png": roc_figure(y, {model.kind: scores}),
        "calibration.png": calibration_figure(y, {model.kind: scores}),
    }
    if isinstance(model.estimator, LightGBMBooster):
        gains = np.asarray(model.estimator.booster.feature_importance(importance_type="gain"))
        figures["feature_importance.png"] = importance_figure(model.features, gains)
    for name, fig in figures.items():
        mlflow.log_figure(fig, f"plots/{name}")
    mlflow.log_dict(reliability(y, scores), RELIABILITY_ARTIFACT)


def reliability(y: np.ndarray, scores: np.ndarray) -> dict:
    """The reliability diagram's bins (src.model.evaluate.reliability_bins: equal-width,
    the ECE's) with their edges, and the ECE; an empty bin's figures are None."""
    rows, mean_p, rate = reliability_bins(y, scores)
    edges = np.linspace(0, 1, len(rows) + 1).tolist()
    bins = [
        {
            "lower": edges[i],
            "upper": edges[i + 1],
            "rows": int(rows[i]),
            "mean_prediction": float(mean_p[i]) if rows[i] else None,
            "observed_rate": float(rate[i]) if rows[i] else None,
        }
        for i in range(len(rows))
    ]
    return {"ece": expected_calibration_error(y, scores), "bins": bins}


def log_slices(
    model: FlightDelayModel, test: pd.DataFrame, scores: np.ndarray, cfg: Config
) -> None:
    """The test slice table as an artifact, with its settings, and as metrics."""
    s = cfg.train.slices
    table = slice_table(test, scores, model.state.plane_tailnum, s.min_rows, s.bootstrap, cfg.seed)
    settings = {"min_rows": s.min_rows, "bootstrap": s.bootstrap, "interval": 1 - ALPHA}
    mlflow.log_dict({**settings, "seed": cfg.seed, "slices": as_records(table)}, SLICES_ARTIFACT)
    mlflow.log_metrics(slice_metrics(table))


def slice_metrics(table: pd.DataFrame) -> dict[str, float]:
    """test_slice_<dimension>_<slice>_<figure>, NaN left out; characters MLflow refuses in
    a name become '_'."""
    out = {}
    for row in table.itertuples(index=False):
        slice_name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{row.dimension}_{row.slice}")
        for figure in FIGURES:
            value = float(getattr(row, figure))
            if not np.isnan(value):
                out[f"{SLICE_METRIC}{slice_name}_{figure}"] = value
    return out


def load_slices(client: MlflowClient, run_id: str) -> dict | None:
    """A run's slice table, or None (no test months, e.g. the cycle's challenger)."""
    return load_logged_dict(client, run_id, SLICES_ARTIFACT)


def load_reliability(client: MlflowClient, run_id: str) -> dict | None:
    """A run's test reliability bins (`reliability`), or None (no test months, or a run
    logged before them)."""
    return load_logged_dict(client, run_id, RELIABILITY_ARTIFACT)


def load_logged_dict(client: MlflowClient, run_id: str, artifact: str) -> dict | None:
    folder = str(Path(artifact).parent)
    if artifact not in {a.path for a in client.list_artifacts(run_id, folder)}:
        return None
    return mlflow.artifacts.load_dict(f"runs:/{run_id}/{artifact}")


EXPLAINED_FLIGHTS = 2000  # the most test flights explained: TreeSHAP costs ms per flight


def log_explanations(model: FlightDelayModel, test: pd.DataFrame, seed: int) -> None:
    """Global importance for the model card: each explanation group's mean absolute
    contribution to the raw score (logit) over the test flights (a seeded sample of
    EXPLAINED_FLIGHTS when more), as metrics and a bar plot. Nothing for an estimator
    without contributions (the logistic baseline)."""
    if not hasattr(model.estimator, "contributions") or test.empty:
        return
    if len(test) > EXPLAINED_FLIGHTS:
        test = test.sample(EXPLAINED_FLIGHTS, random_state=seed)
    importance = model.group_importance(request_columns(test))
    metrics = {CONTRIBUTION_METRIC + group_key(g): v for g, v in importance.items()}
    mlflow.log_metrics({**metrics, EXPLAINED_METRIC: len(test)})
    xlabel = "Mean |contribution| to the raw score (logit)"
    figure = bar_figure(importance, xlabel, "What moves the score", height=4)
    mlflow.log_figure(figure, "plots/contribution_importance.png")
