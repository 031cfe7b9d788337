"""Fixtures of the API tests (the smoke pipeline itself comes from tests/conftest.py)."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from src.common.paths import Paths
from src.serving.loader import LoadedModel, load_export
from tests.api.support import CFG


@pytest.fixture(scope="session")
def smoke_export(smoke_pipeline) -> LoadedModel:
    """The exported smoke champion, loaded the way the API does by default (fast paths on)."""
    return load_export(CFG, smoke_pipeline)


@pytest.fixture
def image_paths(smoke_pipeline, tmp_path) -> Paths:
    """What the container image holds: models/champion/ (a copy of the smoke export) and no
    tracking store at all, in fresh folders under tmp_path."""
    models = tmp_path / "models"
    shutil.copytree(smoke_pipeline.champion, models / "champion")
    return replace(
        smoke_pipeline, data=tmp_path / "data", models=models, mlflow=tmp_path / "mlruns"
    )


@pytest.fixture
def image_env(image_paths, monkeypatch) -> Paths:
    """This process's environment as the image's: FD_* folders point at `image_paths`, no
    FD_CONFIG, no MLFLOW_TRACKING_URI."""
    monkeypatch.delenv("FD_CONFIG", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("FD_DATA_DIR", str(image_paths.data))
    monkeypatch.setenv("FD_MODELS_DIR", str(image_paths.models))
    monkeypatch.setenv("FD_MLFLOW_DIR", str(image_paths.mlflow))
    return image_paths
