"""The one model object: raw flight records in, delay probability out (features inside).

`FlightDelayModel` is what training fits, what MLflow logs and serves (this module is the
logged model's pyfunc loader: `_load_pyfunc` below), what the API, the monitoring loop and the
gate score with. Its file (`to_bytes`) holds the feature state and the estimator, a LightGBM
booster as model text, so reading it needs neither MLflow nor the `lightgbm` package. It is
a pickle: load only files this project wrote (the same trust as any MLflow pyfunc).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from src.common.schema import PREDICTION, REQUEST_FIELDS
from src.model.features import Columns, FeatureState, build_features, request_columns


class Estimator(Protocol):
    """What the model needs from a fitted classifier: probabilities for feature rows."""

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def predict_one(self, row: np.ndarray) -> float: ...


# What builds the estimator from LightGBM model text: LightGBMBooster.from_text, or the
# API's C-API fast path (src.serving.lgb_capi.CApiBooster).
BoosterFromText = Callable[[str], Estimator]


class LightGBMBooster:
    """The plain path: `lightgbm.Booster` (imported only when a LightGBM model is built)."""

    def __init__(self, booster):
        self.booster = booster

    @classmethod
    def from_text(cls, model_text: str) -> LightGBMBooster:
        import lightgbm

        return cls(lightgbm.Booster(model_str=model_text))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(X, num_threads=1)

    def predict_one(self, row: np.ndarray) -> float:
        return float(self.predict(row[np.newaxis, :])[0])

    def to_text(self) -> str:
        return self.booster.model_to_string()


class LogisticEstimator:
    """The baseline: a fitted scikit-learn pipeline ending in LogisticRegression."""

    def __init__(self, pipeline):
        self.pipeline = pipeline

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.pipeline.predict_proba(X)[:, 1]

    def predict_one(self, row: np.ndarray) -> float:
        return float(self.predict(row[np.newaxis, :])[0])


@dataclass(frozen=True)
class FlightDelayModel:
    state: FeatureState
    estimator: Estimator
    kind: str  # "lightgbm" | "logistic"

    def predict_proba(self, cols: Columns) -> np.ndarray:
        """Delay probabilities for flights given as columns (one array per REQUEST field)."""
        return self.estimator.predict(build_features(cols, self.state))

    def predict_one(self, record: dict) -> float:
        """One flight given as a record: the same features, the estimator's one-row call."""
        cols = {field: [record.get(field)] for field in REQUEST_FIELDS}
        return self.estimator.predict_one(build_features(cols, self.state)[0])

    def predict(self, model_input, params=None):
        """MLflow's pyfunc entry point: a frame of flight records in (optional fields may be
        left out), a one-column frame of probabilities out."""
        import pandas as pd  # only here: the API never calls this, and never imports pandas

        proba = self.predict_proba(request_columns(model_input))
        return pd.DataFrame({PREDICTION: proba}, index=getattr(model_input, "index", None))


def to_bytes(model: FlightDelayModel) -> bytes:
    """The model file: kind, feature state, and the estimator (LightGBM as model text)."""
    if isinstance(model.estimator, LightGBMBooster):
        estimator = model.estimator.to_text()
    elif isinstance(model.estimator, LogisticEstimator):
        estimator = model.estimator.pipeline
    else:  # the API's C-API booster is built from a file, never written to one
        raise TypeError(f"cannot write a model with a {type(model.estimator).__name__}")
    payload = {"kind": model.kind, "state": model.state, "estimator": estimator}
    return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)


def from_bytes(
    data: bytes, booster: BoosterFromText = LightGBMBooster.from_text
) -> FlightDelayModel:
    """The model back from its file. `booster` builds the estimator from LightGBM model text:
    the plain `lightgbm.Booster` by default, the API's C-API fast path when it asks."""
    payload = pickle.loads(data)  # noqa: S301 - our own export or registry
    if payload["kind"] == "lightgbm":
        estimator = booster(payload["estimator"])
    else:
        estimator = LogisticEstimator(payload["estimator"])
    return FlightDelayModel(payload["state"], estimator, payload["kind"])


def load(path: Path, booster: BoosterFromText = LightGBMBooster.from_text) -> FlightDelayModel:
    return from_bytes(Path(path).read_bytes(), booster)


def _load_pyfunc(data_path: str, model_config=None) -> FlightDelayModel:
    """MLflow's loader for the logged model (`loader_module`): `mlflow models serve`,
    `mlflow.pyfunc.load_model` and spark_udf all score through `FlightDelayModel.predict`."""
    return load(Path(data_path))
