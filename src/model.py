"""The logged model: raw flight records in, delay probability out (features inside)."""

from __future__ import annotations

import tempfile
from importlib.metadata import version
from pathlib import Path

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from src.common.paths import ROOT
from src.common.schema import PREDICTION, REQUEST, REQUEST_FIELDS
from src.features import FeatureState, build_features
from src.servable import SERVABLE_FILE, write_servable

RUNTIME_PACKAGES = ("mlflow", "lightgbm", "scikit-learn", "numpy", "pandas", "cloudpickle")


class FlightDelayModel(mlflow.pyfunc.PythonModel):
    """Feature state + estimator. `predict_proba` over columns is the API's fast path;
    `predict` is the MLflow pyfunc entry point; both run the same code."""

    def __init__(self, state: FeatureState, estimator, kind: str):
        self.state = state
        self.estimator = estimator
        self.kind = kind  # "lightgbm" | "logistic"

    def predict_proba(self, cols) -> np.ndarray:
        X = build_features(cols, self.state)
        if isinstance(self.estimator, lgb.Booster):
            return self.estimator.predict(X, num_threads=1)
        return self.estimator.predict_proba(X)[:, 1]

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        cols = {c: model_input[c].to_numpy() for c in REQUEST_FIELDS}
        return pd.DataFrame({PREDICTION: self.predict_proba(cols)})


def pip_requirements() -> list[str]:
    """Pinned from the running environment (skips MLflow's slow requirement inference)."""
    return [f"{p}=={version(p)}" for p in RUNTIME_PACKAGES]


def signature() -> ModelSignature:
    """Derived from the request schema: nullable fields (tailnum, weather) are optional."""
    types = {"int": "long", "float": "double", "str": "string"}
    inputs = Schema([ColSpec(types[c.kind], c.name, required=not c.nullable) for c in REQUEST])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double", PREDICTION)]))


def log_model(model: FlightDelayModel, example: pd.DataFrame):
    """Log as an MLflow pyfunc with signature, input example and the feature code, plus the
    servable form (artifacts/servable.pkl): an API worker reloads a version from that one
    file, without importing MLflow or unpickling the pyfunc (src/champion.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        write_servable(model, Path(tmp))
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            artifacts={"servable": str(Path(tmp) / SERVABLE_FILE)},
            code_paths=[str(ROOT / "src")],
            signature=signature(),
            input_example=example[list(REQUEST_FIELDS)],
            pip_requirements=pip_requirements(),
        )
