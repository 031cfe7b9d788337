"""Every folder the pipeline reads or writes. Nothing else in the repo spells a path.

Paths are resolved when `get_paths()` is called (never at import) so that tests and
containers can relocate them with environment variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS_DIR = ROOT / "configs"
CONTRACTS_DIR = CONFIGS_DIR / "contracts"
DEFAULT_CONFIG = CONFIGS_DIR / "default.yml"


@dataclass(frozen=True)
class Paths:
    data: Path
    models: Path
    reports: Path
    mlflow: Path
    tracking: str | None = None  # MLFLOW_TRACKING_URI as set by the user

    @property
    def raw(self) -> Path:
        return self.data / "raw" / "nycflights13"

    @property
    def processed(self) -> Path:
        return self.data / "processed"

    @property
    def predictions(self) -> Path:
        return self.data / "predictions"

    @property
    def champion(self) -> Path:
        return self.models / "champion"

    @property
    def drift_reports(self) -> Path:
        return self.reports / "drift"

    @property
    def tracking_uri(self) -> str:
        """The user's MLFLOW_TRACKING_URI if set, else the embedded SQLite store."""
        return self.tracking or f"sqlite:///{self.mlflow / 'mlflow.db'}"

    @property
    def artifacts(self) -> Path:
        """Artifact folder used when the tracking store is the embedded SQLite file."""
        return self.mlflow / "artifacts"


def get_paths() -> Paths:
    env = os.environ
    return Paths(
        data=Path(env.get("FD_DATA_DIR", ROOT / "data")),
        models=Path(env.get("FD_MODELS_DIR", ROOT / "models")),
        reports=Path(env.get("FD_REPORTS_DIR", ROOT / "reports")),
        mlflow=Path(env.get("FD_MLFLOW_DIR", ROOT / "mlruns")),
        tracking=env.get("MLFLOW_TRACKING_URI") or None,
    )
