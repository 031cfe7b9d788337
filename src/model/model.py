"""The one model object: raw flight records in, delay probability out (features inside).

`FlightDelayModel` is what training fits, what MLflow logs and serves (this module is the
logged model's pyfunc loader), and what every other path scores with. Its file (`to_bytes`)
holds the feature state, the estimator (LightGBM as model text) and the calibrator as plain
numbers, so reading it needs neither MLflow nor `lightgbm`. It is a pickle: load only files
this project wrote (the same trust as any MLflow pyfunc). Calibrators are applied here, in
numpy, because every path runs this file; fitting them lives in src/model/calibration.py.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from src.common.errors import PipelineError
from src.common.schema import PREDICTION, REQUEST_FIELDS
from src.model.features import (
    Columns,
    FeatureState,
    build_features,
    check_buildable,
    request_columns,
)


class Estimator(Protocol):
    """What the model needs from a fitted classifier: probabilities for feature rows."""

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def predict_one(self, row: np.ndarray) -> float: ...


class Explainable(Protocol):
    """An estimator that splits its raw score (the logit) per feature: LightGBM's TreeSHAP."""

    def contributions(self, X: np.ndarray) -> np.ndarray: ...


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

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per row, each feature's contribution to the raw score (logit), then the base
        value (the last column): a row sums to the raw score (TreeSHAP, exact)."""
        return self.booster.predict(X, pred_contrib=True, num_threads=1)

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


# Probabilities are kept this far from 0 and 1 where a logit is taken or a calibrated
# probability could reach 0 or 1 (one surprising flight would cost an infinite log loss).
PROBABILITY_FLOOR = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class PlattCalibrator:
    """Platt scaling on the logit: p -> sigmoid(a * logit(p) + b)."""

    a: float
    b: float
    method: str = field(default="platt", init=False)

    def apply(self, p: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(self.a * logit(p) + self.b)))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "a": float(self.a), "b": float(self.b)}


@dataclass(frozen=True)
class IsotonicCalibrator:
    """Isotonic regression as its fitted steps: p -> the line through the points (x, y),
    held flat beyond the ends (sklearn's IsotonicRegression(out_of_bounds="clip"))."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    method: str = field(default="isotonic", init=False)

    def apply(self, p: np.ndarray) -> np.ndarray:
        return np.interp(p, self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "x": list(self.x), "y": list(self.y)}


Calibrator = PlattCalibrator | IsotonicCalibrator


def calibrator_from_dict(data: dict[str, Any] | None) -> Calibrator | None:
    """A calibrator back from its plain-data form (None: the model has none)."""
    if data is None:
        return None
    if data["method"] == "platt":
        return PlattCalibrator(float(data["a"]), float(data["b"]))
    if data["method"] == "isotonic":
        return IsotonicCalibrator(tuple(map(float, data["x"])), tuple(map(float, data["y"])))
    raise ValueError(f"calibrator method '{data['method']}': expected 'platt' or 'isotonic'")


@dataclass(frozen=True)
class FlightDelayModel:
    state: FeatureState
    estimator: Estimator
    kind: str  # "lightgbm" | "logistic"
    calibrator: Calibrator | None = None  # fitted after the estimator, on validation rows

    @property
    def features(self) -> tuple[str, ...]:
        """The ordered features the model was trained on (its file records them)."""
        return self.state.features

    def predict_proba(self, cols: Columns) -> np.ndarray:
        """Delay probabilities for flights as columns (one array per REQUEST field)."""
        return self._calibrated(self.estimator.predict(build_features(cols, self.state)))

    def predict_one(self, record: dict) -> float:
        """One flight given as a record: the same features, the estimator's one-row call."""
        cols = {name: [record.get(name)] for name in REQUEST_FIELDS}
        p = self.estimator.predict_one(build_features(cols, self.state)[0])
        return float(self._calibrated(np.array([p]))[0]) if self.calibrator else p

    def contributions(self, cols: Columns) -> np.ndarray:
        """Per flight, each feature's contribution to the booster's raw score (the logit
        before calibration), in `features` order, then the base value: a row sums to the raw
        score. NotExplainable for an estimator without them."""
        contributions = getattr(self.estimator, "contributions", None)
        if contributions is None:
            raise NotExplainable(f"a {self.kind} model gives no per-feature contributions")
        X = build_features(cols, self.state)
        if len(X) == 0:  # LightGBM divides by the row count: no flights, no contributions
            return np.zeros((0, len(self.features) + 1))
        return contributions(X)

    def group_contributions(self, contributions: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
        """Per-feature contributions (as `contributions` returns them) summed by explanation
        group (src.model.features.EXPLANATION_GROUPS): (group names, rows x groups)."""
        groups, member = self.state.explanation_groups
        return groups, contributions[:, :-1] @ member

    def group_importance(self, cols: Columns) -> dict[str, float]:
        """Per explanation group, its mean absolute contribution over these flights (logit
        units): the model card's global importance."""
        groups, grouped = self.group_contributions(self.contributions(cols))
        return dict(zip(groups, np.abs(grouped).mean(axis=0).tolist(), strict=True))

    def explain(self, cols: Columns, top_k: int = 3) -> list[Explanation]:
        """Per flight: base value, raw score (logit, before calibration) and the `top_k`
        groups by absolute contribution, e.g. "the airport's last two hours: +0.90"."""
        contributions = self.contributions(cols)
        groups, grouped = self.group_contributions(contributions)
        out = []
        for row, by_group in zip(contributions, grouped, strict=True):
            top = np.argsort(-np.abs(by_group), kind="stable")[:top_k]
            reasons = tuple(Reason(groups[i], float(by_group[i])) for i in top)
            out.append(Explanation(float(row[-1]), float(row.sum()), reasons))
        return out

    def explain_one(self, record: dict, top_k: int = 3) -> Explanation:
        """One flight given as a record (as predict_one takes it)."""
        return self.explain({name: [record.get(name)] for name in REQUEST_FIELDS}, top_k)[0]

    def predict_and_explain_one(self, record: dict, top_k: int = 3) -> tuple[float, Explanation]:
        """predict_one's probability with explain_one's explanation, the trees walked once:
        the contributions sum to the raw score, and the binary objective's probability is
        its sigmoid (then the calibrator)."""
        why = self.explain_one(record, top_k)
        p = 1 / (1 + np.exp(-np.array([why.raw_score])))
        return float(self._calibrated(p)[0]), why

    def _calibrated(self, p: np.ndarray) -> np.ndarray:
        return p if self.calibrator is None else self.calibrator.apply(p)

    def predict(self, model_input, params=None):
        """MLflow's pyfunc entry point: a frame of flight records in (optional fields may be
        left out), a one-column frame of probabilities out."""
        import pandas as pd  # only here: the API never calls this, and never imports pandas

        proba = self.predict_proba(request_columns(model_input))
        return pd.DataFrame({PREDICTION: proba}, index=getattr(model_input, "index", None))


def to_bytes(model: FlightDelayModel) -> bytes:
    """The model file: kind, feature state, the estimator (LightGBM as model text) and the
    calibrator as plain data (None without one), so the file names none of its classes."""
    if isinstance(model.estimator, LightGBMBooster):
        estimator = model.estimator.to_text()
    elif isinstance(model.estimator, LogisticEstimator):
        estimator = model.estimator.pipeline
    else:  # the API's C-API booster is built from a file, never written to one
        raise TypeError(f"cannot write a model with a {type(model.estimator).__name__}")
    calibrator = model.calibrator.to_dict() if model.calibrator else None
    payload = dict(kind=model.kind, state=model.state, estimator=estimator, calibrator=calibrator)
    return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)


class NotExplainable(PipelineError):
    """The model's estimator gives no per-feature contributions (the logistic baseline)."""


@dataclass(frozen=True)
class Reason:
    """One group's share of a flight's raw score: logit units, signed (+: towards delayed)."""

    group: str
    value: float

    @property
    def text(self) -> str:
        return f"{self.group}: {self.value:+.2f}"

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.group, "value": self.value, "text": self.text}


@dataclass(frozen=True)
class Explanation:
    """Why one flight scored as it did: the booster's raw score (the logit, before any
    calibrator) = base + the contribution of every group; `reasons` are the largest."""

    base: float  # the raw score of a flight the model knows nothing about (training's mean)
    raw_score: float
    reasons: tuple[Reason, ...]  # the top groups by absolute contribution, largest first

    def as_dict(self) -> dict[str, Any]:
        reasons = [r.as_dict() for r in self.reasons]
        return {"base": self.base, "raw_score": self.raw_score, "reasons": reasons}


def from_bytes(
    data: bytes, booster: BoosterFromText = LightGBMBooster.from_text, where: str = "model file"
) -> FlightDelayModel:
    """The model back from its file; `booster` builds the estimator from LightGBM model text.
    A file whose features this code cannot build is refused before any estimator is built."""
    payload = pickle.loads(data)  # noqa: S301 - our own export or registry
    check_buildable(payload["state"].features, where)
    if payload["kind"] == "lightgbm":
        estimator = booster(payload["estimator"])
    else:
        estimator = LogisticEstimator(payload["estimator"])
    calibrator = calibrator_from_dict(payload.get("calibrator"))  # files before it: none
    return FlightDelayModel(payload["state"], estimator, payload["kind"], calibrator)


def load(path: Path, booster: BoosterFromText = LightGBMBooster.from_text) -> FlightDelayModel:
    return from_bytes(Path(path).read_bytes(), booster, str(path))


def _load_pyfunc(data_path: str, model_config=None) -> FlightDelayModel:
    """MLflow's loader for the logged model (`loader_module`): `mlflow models serve`,
    `mlflow.pyfunc.load_model` and spark_udf all score through `FlightDelayModel.predict`."""
    return load(Path(data_path))
