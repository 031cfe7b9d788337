"""Regression: which config the API serves with when FD_CONFIG is not set.

The container image sets no FD_CONFIG and has no tracking store; it holds the export that
`make smoke` (or `make pipeline`) wrote to models/champion/, with the config it was
registered with (config.json). The API must serve that export: src.serving.loader
`serving_config` falls back to models/champion/config.json. (It used to fall back to
configs/default.yml, whose model name is flight-delay: the smoke export, flight-delay-smoke,
was then not "its" model, and the API stayed at 503.)

The documented rule the other way: an explicit FD_CONFIG wins, even when the export holds
another model; with no registry to load the config's model from, the API says so (503)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from src.common.io import read_json
from src.common.paths import DEFAULT_CONFIG, ROOT
from src.common.schema import EXAMPLE_FLIGHT
from src.common.servers import free_port, http_json, stop_server
from src.common.settings import Settings
from src.serving.loader import serving_config
from tests.api.support import CFG, wait_until
from tests.conftest import wait_or_fail

SMOKE_NAME = CFG.registry.model_name  # flight-delay-smoke


def test_the_export_and_default_config_disagree_on_the_model(image_paths):
    """What makes the fallback matter: the smoke export is not configs/default.yml's model."""
    assert read_json(image_paths.champion_metadata)["name"] == SMOKE_NAME == "flight-delay-smoke"
    assert read_json(image_paths.champion_config)["registry"]["model_name"] == SMOKE_NAME
    assert serving_config(Settings(config=DEFAULT_CONFIG), image_paths).registry.model_name == (
        "flight-delay"
    )


def test_without_fd_config_the_exports_config_is_served(image_env):
    assert "FD_CONFIG" not in os.environ and "MLFLOW_TRACKING_URI" not in os.environ
    with TestClient(create_app()) as c:
        ready = c.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["source"] == "export" and ready.json()["model_version"] == "1"
        assert c.get("/model").json()["name"] == SMOKE_NAME
        r = c.post("/predict", json=EXAMPLE_FLIGHT)
        assert r.status_code == 200 and r.json()["model_name"] == SMOKE_NAME
        assert c.app.state.config == CFG  # the config it was registered with, in full
    assert serving_config(Settings(), image_env) == CFG
    assert not image_env.mlflow.exists()  # no tracking store was created by the polls


@pytest.mark.slow
def test_real_uvicorn_without_fd_config_serves_the_export(image_paths, tmp_path):
    """As the image starts it: `uvicorn app.main:app`, FD_CONFIG and MLFLOW_TRACKING_URI
    absent from its environment, FD_MODELS_DIR at the export."""
    env = {k: v for k, v in os.environ.items() if k not in ("FD_CONFIG", "MLFLOW_TRACKING_URI")}
    env |= {
        "FD_DATA_DIR": str(image_paths.data),
        "FD_MODELS_DIR": str(image_paths.models),
        "FD_MLFLOW_DIR": str(image_paths.mlflow),
        "OMP_NUM_THREADS": "1",
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--log-level", "warning"]
    log = tmp_path / "uvicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_or_fail(f"{base}/health", proc, log, timeout=120)
            status, ready = http_json(f"{base}/ready")
            assert status == 200, (ready, log.read_text()[-2000:])
            assert ready["source"] == "export"
            status, info = http_json(f"{base}/model")
            assert status == 200 and info["name"] == SMOKE_NAME
            status, body = http_json(f"{base}/predict", EXAMPLE_FLIGHT)
            assert status == 200 and body["model_name"] == SMOKE_NAME, body
        finally:
            assert stop_server(proc, signal.SIGINT, timeout=30) == 0  # graceful, flushed
    assert not image_paths.mlflow.exists()


def test_explicit_fd_config_wins_and_without_its_registry_the_api_says_so(image_env, monkeypatch):
    """FD_CONFIG=configs/default.yml: the flight-delay model, which the export (the smoke
    model) is not and no registry can provide: /ready is 503, never the smoke model."""
    monkeypatch.setenv("FD_CONFIG", str(DEFAULT_CONFIG))
    with TestClient(create_app()) as c:
        assert c.app.state.config.registry.model_name == "flight-delay"
        assert c.get("/health").status_code == 200
        ready = c.get("/ready")
        assert ready.status_code == 503 and "no model loaded" in ready.json()["detail"]
        assert c.post("/predict", json=EXAMPLE_FLIGHT).status_code == 503
        # Still not ready once the background poll has found no registry either.
        service = c.app.state.service
        wait_until(lambda: service.registry.reachable is not None, 60, what="a registry poll")
        assert service.registry.reachable is False
        assert c.get("/ready").status_code == 503
