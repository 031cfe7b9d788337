"""Shared fixtures: the smoke pipeline run once, for real, into a temporary project tree.

The suite starts from a clean environment: every FD_* and MLFLOW_* variable of the user's
shell, and PROMETHEUS_MULTIPROC_DIR, are removed for the session (an API key, a tracking
server or a metrics folder of the user's must not change what the tests see).
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import settings

from src.common.errors import PipelineError
from src.common.paths import ROOT, SMOKE_CONFIG, Paths, get_paths
from src.common.servers import free_port, stop_server, wait_http

PATH_VARS = ("FD_DATA_DIR", "FD_MODELS_DIR", "FD_REPORTS_DIR", "FD_MLFLOW_DIR")
USER_VARS = ("PROMETHEUS_MULTIPROC_DIR",)  # plus every FD_* and MLFLOW_* variable
# CI runs the same generated cases every time (a failure there reproduces locally with
# HYPOTHESIS_PROFILE=ci); by hand, hypothesis explores new cases each run.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def user_variables() -> list[str]:
    return [k for k in os.environ if k.startswith(("FD_", "MLFLOW_")) or k in USER_VARS]


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
    """A clean environment, and no test ever writes into the repo's data/, models/,
    reports/ or mlruns/."""
    saved = {k: os.environ.pop(k) for k in user_variables()}
    os.environ.update(point_paths_at(tmp_path_factory.mktemp("project")))
    os.environ["FD_CONFIG"] = str(SMOKE_CONFIG)
    # MLflow and Evidently send usage telemetry by default: nothing may leave loopback.
    os.environ.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
    yield
    for key in user_variables():
        os.environ.pop(key, None)
    os.environ.update(saved)


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

    from src.tracking.store import connect

    connect(smoke_pipeline)
    return MlflowClient()


@pytest.fixture(scope="session")
def test_split(smoke_pipeline) -> pd.DataFrame:
    return pd.read_parquet(smoke_pipeline.processed / "test.parquet")


@contextmanager
def server_process(cmd: list[str], env: dict, log: Path | None):
    """A server process in its own session; its output goes to `log` when given."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield proc
    finally:
        stop_server(proc, timeout=60)
        if log:
            out.close()


def wait_or_fail(url: str, proc: subprocess.Popen, log: Path | None, timeout: float = 120):
    try:
        wait_http(url, proc, timeout)
    except PipelineError as exc:
        pytest.fail(f"{exc}\n{log.read_text()[-3000:] if log else ''}")


@contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, log: Path | None = None):
    """A real `mlflow server` on a free loopback port: yields (url, process)."""
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts)]
    cmd += ["--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runners
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    url = f"http://127.0.0.1:{port}"
    with server_process(cmd, env, log) as proc:
        wait_or_fail(f"{url}/health", proc, log)
        yield url, proc


@contextmanager
def gunicorn(env: dict, workers: int = 2, log: Path | None = None):
    """The production server (app/gunicorn_conf.py) on a free loopback port: yields
    (base URL, master process). Its output goes to `log` when given (for failure messages)."""
    port = free_port()
    full_env = {**os.environ, **env, "FD_BIND": f"127.0.0.1:{port}", "FD_WORKERS": str(workers)}
    cmd = [sys.executable, "-m", "gunicorn", "-c", "app/gunicorn_conf.py", "app.main:app"]
    base = f"http://127.0.0.1:{port}"
    with server_process(cmd, full_env, log) as proc:
        wait_or_fail(f"{base}/ready", proc, log)
        yield base, proc
