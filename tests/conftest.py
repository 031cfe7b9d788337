"""Shared fixtures: the smoke pipeline run once, for real, into a temporary project tree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from src.common.paths import CONFIGS_DIR, ROOT, Paths, get_paths
from src.serve import free_port

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


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until `url` answers 200; fails fast if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode} before {url} answered")
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"{url}: no 200 within {timeout:.0f} s")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


@contextmanager
def mlflow_server(backend_uri: str, artifacts: Path):
    """A real `mlflow server` on a free loopback port: yields (url, process)."""
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts)]
    cmd += ["--workers", "1"]
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no job runners
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", proc, timeout=90)
        yield url, proc
    finally:
        stop(proc)


@contextmanager
def gunicorn(env: dict, workers: int = 2, log: Path | None = None):
    """The production server (app/gunicorn_conf.py) on a free loopback port: yields
    (base URL, master process). Its output goes to `log` when given (for failure messages)."""
    port = free_port()
    full_env = {**os.environ, **env, "FD_BIND": f"127.0.0.1:{port}", "FD_WORKERS": str(workers)}
    cmd = [sys.executable, "-m", "gunicorn", "-c", "app/gunicorn_conf.py", "app.main:app"]
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=full_env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/ready", proc)
        yield base, proc
    finally:
        stop(proc)
        if log:
            out.close()
