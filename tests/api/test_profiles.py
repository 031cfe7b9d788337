"""The plain path is the default and the fast paths are opt-in (issue 22): `uvicorn
app.main:app` serves with lightgbm.Booster, MlflowClient and FastAPI's parse; FD_FAST_PATHS
(set by the production profile: app/gunicorn_conf.py, the image, K8s) turns on the ones it
names; the C-API path finds LightGBM's library under each platform's file name, and where it
cannot, says so in one line and the plain path serves."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from src.common.config import with_fast_paths
from src.common.paths import ROOT
from src.common.schema import EXAMPLE_FLIGHT
from src.common.settings import Settings
from src.model.model import LightGBMBooster
from src.serving import lgb_capi
from src.serving.lgb_capi import CApiBooster
from src.serving.loader import booster_for
from tests.api.support import cfg_with

ALL_OFF = {"lightgbm_c_api": False, "registry_rest": False, "batch_parse": False}


def served(client: TestClient):
    return client.app.state.service.champion.model.estimator


def test_the_plain_path_is_the_default(image_env):
    assert "FD_FAST_PATHS" not in os.environ
    with TestClient(create_app()) as c:
        assert c.app.state.config.serve.fast_paths.model_dump() == ALL_OFF
        assert isinstance(served(c), LightGBMBooster)
        assert c.post("/predict", json=EXAMPLE_FLIGHT).status_code == 200


def test_fd_fast_paths_turns_on_the_ones_it_names(image_env, monkeypatch):
    monkeypatch.setenv("FD_FAST_PATHS", "lightgbm_c_api, batch_parse")
    with TestClient(create_app()) as c:
        switches = c.app.state.config.serve.fast_paths
        assert (switches.lightgbm_c_api, switches.batch_parse, switches.registry_rest) == (
            True,
            True,
            False,
        )
        assert isinstance(served(c), CApiBooster)
    monkeypatch.setenv("FD_FAST_PATHS", "none")  # every one off, whatever the config says
    on = cfg_with(fast_paths=dict.fromkeys(ALL_OFF, True))
    assert with_fast_paths(on, Settings()).serve.fast_paths.model_dump() == ALL_OFF


def test_gunicorns_config_is_the_production_profile():
    """app/gunicorn_conf.py turns on every fast path unless the deployment chose."""
    code = "import runpy; print(runpy.run_path('app/gunicorn_conf.py')['raw_env'])"
    env = {k: v for k, v in os.environ.items() if k != "FD_FAST_PATHS"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "'FD_FAST_PATHS=lightgbm_c_api,registry_rest,batch_parse'" in done.stdout
    chosen = {**env, "FD_FAST_PATHS": "none"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=chosen,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "FD_FAST_PATHS" not in done.stdout, done.stderr


@pytest.mark.parametrize("name", ["lib_lightgbm.dylib", "lib_lightgbm.dll"])
def test_the_c_api_finds_the_library_under_other_platforms_names(name, tmp_path):
    """A lightgbm package laid out as the macOS or Windows wheel names its library (the
    Linux library under that name: ctypes does not care about the suffix)."""
    package = tmp_path / "lightgbm"
    (package / "lib").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('never imported')\n")
    shutil.copy(lgb_capi.library_path(), package / "lib" / name)
    code = (
        "from src.serving import lgb_capi; print(lgb_capi.library_path().name);"
        "print(lgb_capi.available())"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [name, "None"]


def test_without_the_library_the_plain_path_serves_and_says_why(monkeypatch, caplog):
    monkeypatch.setattr(lgb_capi, "LIBRARY_NAMES", ("lib_lightgbm.nowhere",))
    lgb_capi._lib.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            booster = booster_for(cfg_with(fast_paths={"lightgbm_c_api": True}))
    finally:
        lgb_capi._lib.cache_clear()
    assert booster == LightGBMBooster.from_text
    [line] = [r.getMessage() for r in caplog.records if "C API" in r.getMessage()]
    assert "lib_lightgbm.nowhere" in line and "lightgbm.Booster" in line


def test_the_plain_server_imports_nothing_posix_only():
    """`make serve` (uvicorn with app/slow_clients.py's protocol) must start on Windows:
    gunicorn, which needs fcntl and pwd, stays out of it (it is the production server's)."""
    code = (
        "import sys, app.main, app.slow_clients, src.serve;"
        "print(sorted({'gunicorn', 'uvicorn_worker'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
