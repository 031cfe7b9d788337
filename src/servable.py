"""The serving form of a model: its feature state plus the booster as LightGBM model text.

`src.register` writes it next to the exported MLflow model (models/champion/servable.pkl);
the API and the monitoring stages load it without MLflow, pandas or scikit-learn, so an
API worker starts in about a second and stays small. It is a pickle: load only exports
this project wrote (the same trust as the MLflow pyfunc it is derived from).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.booster import Booster
from src.common.errors import ModelNotFoundError
from src.common.io import write_atomic
from src.common.schema import REQUEST_FIELDS
from src.features import Columns, FeatureState, build_features

SERVABLE_FILE = "servable.pkl"
SERVABLE_ARTIFACT = f"artifacts/{SERVABLE_FILE}"  # inside a logged model (src/model.py)


@dataclass(frozen=True)
class Servable:
    state: FeatureState
    estimator: object  # src.booster.Booster, or a fitted scikit-learn classifier
    kind: str  # "lightgbm" | "logistic"

    def predict_proba(self, cols: Columns) -> np.ndarray:
        """Delay probabilities for flights given as columns (REQUEST fields)."""
        X = build_features(cols, self.state)
        if self.kind == "lightgbm":
            return self.estimator.predict(X)
        return self.estimator.predict_proba(X)[:, 1]

    def predict_one(self, record: dict) -> float:
        """One flight: the same features, then LightGBM's single-row fast path."""
        cols = {f: [record[f]] for f in REQUEST_FIELDS}
        if self.kind == "lightgbm":
            return self.estimator.predict_one(build_features(cols, self.state)[0])
        return float(self.predict_proba(cols)[0])


def _payload(model) -> dict:
    """From a src.model.FlightDelayModel (its booster as text: no pickled lightgbm objects)."""
    text = model.kind == "lightgbm"
    estimator = model.estimator.model_to_string() if text else model.estimator
    return {"kind": model.kind, "state": model.state, "estimator": estimator}


def _from_payload(payload: dict) -> Servable:
    estimator = payload["estimator"]
    if payload["kind"] == "lightgbm":
        estimator = Booster(estimator)
    return Servable(payload["state"], estimator, payload["kind"])


def from_model(model) -> Servable:
    return _from_payload(_payload(model))


def write_servable(model, folder: Path) -> None:
    data = pickle.dumps(_payload(model), protocol=pickle.HIGHEST_PROTOCOL)
    write_atomic(folder / SERVABLE_FILE, lambda p: p.write_bytes(data))


def read_servable(folder: Path) -> Servable:
    path = folder / SERVABLE_FILE
    if not path.is_file():
        raise ModelNotFoundError(
            f"{path}: not found; export the champion with `python -m src.register`"
        )
    return servable_from_bytes(path.read_bytes())


def servable_from_bytes(data: bytes) -> Servable:
    return _from_payload(pickle.loads(data))  # noqa: S301 - our own export or registry
