"""train + register against a real `mlflow server` on a free loopback port; serving falls
back to the exported champion when that server goes away."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient

from src.champion import load_champion
from src.common.config import load_config
from src.common.io import read_json
from src.common.paths import ROOT, get_paths
from tests.conftest import SMOKE_CONFIG
from tests.conftest import mlflow_server as conftest_server

pytestmark = pytest.mark.slow
CFG = load_config(SMOKE_CONFIG)


@pytest.fixture
def mlflow_server(tmp_path):
    with conftest_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts") as server:
        yield server


def run_stage(module: str, env: dict) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--config", str(SMOKE_CONFIG)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_train_register_against_server_then_survive_its_loss(
    smoke_pipeline, mlflow_server, tmp_path, monkeypatch
):
    url, proc = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("FD_MODELS_DIR", str(tmp_path / "models"))  # processed data is shared
    env = dict(os.environ)
    run_stage("src.train", env)
    run_stage("src.register", env)

    version = MlflowClient(tracking_uri=url, registry_uri=url).get_model_version_by_alias(
        CFG.registry.model_name, "champion"
    )
    meta = read_json(get_paths().champion / "metadata.json")
    assert meta["run_id"] == version.run_id

    served = load_champion(CFG, get_paths())
    assert (served.source, served.run_id) == ("registry", version.run_id)

    proc.terminate()
    proc.wait(timeout=30)
    start = time.monotonic()
    fallback = load_champion(CFG, get_paths())
    assert (fallback.source, fallback.run_id) == ("export", version.run_id)
    assert time.monotonic() - start < 30
