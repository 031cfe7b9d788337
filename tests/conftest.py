"""Shared fixtures: the smoke pipeline run once, for real, into a temporary project tree."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from src.common.paths import CONFIGS_DIR, Paths, get_paths

SMOKE_CONFIG = CONFIGS_DIR / "smoke.yml"
PATH_VARS = ("FD_DATA_DIR", "FD_MODELS_DIR", "FD_REPORTS_DIR", "FD_MLFLOW_DIR")


def point_paths_at(root: Path) -> dict[str, str]:
    """Environment that relocates every pipeline folder under `root`."""
    return {
        "FD_DATA_DIR": str(root / "data"),
        "FD_MODELS_DIR": str(root / "models"),
        "FD_REPORTS_DIR": str(root / "reports"),
        "FD_MLFLOW_DIR": str(root / "mlruns"),
    }


@pytest.fixture(scope="session", autouse=True)
def isolated_paths(tmp_path_factory):
    """No test ever writes into the repo's data/, models/, reports/ or mlruns/."""
    saved = {k: os.environ.get(k) for k in (*PATH_VARS, "MLFLOW_TRACKING_URI", "FD_CONFIG")}
    os.environ.update(point_paths_at(tmp_path_factory.mktemp("project")))
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["FD_CONFIG"] = str(SMOKE_CONFIG)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def smoke_pipeline(isolated_paths) -> Paths:
    """ingest -> preprocess -> train -> register on the smoke slice (Jan/Feb/Mar)."""
    from src import ingest, preprocess, register, train

    args = ["--config", str(SMOKE_CONFIG)]
    for stage in (ingest, preprocess, train, register):
        assert stage.main(args) == 0, f"{stage.__name__} failed"
    return get_paths()


@pytest.fixture(scope="module")
def mlflow_client(smoke_pipeline):
    """A client on the smoke pipeline's tracking store."""
    from mlflow import MlflowClient

    from src.common.tracking import connect

    connect(smoke_pipeline)
    return MlflowClient()


@pytest.fixture(scope="session")
def test_split(smoke_pipeline) -> pd.DataFrame:
    return pd.read_parquet(smoke_pipeline.processed / "test.parquet")
