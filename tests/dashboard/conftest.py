"""A real API for the dashboard's tests: uvicorn serving the smoke champion on a free
loopback port, with a SQLite online store fed the smoke snapshot's rows from 6 to 15 August
2013, 12:00 UTC (as tests/api/test_flights.py feeds it). No model is mocked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from src.common.paths import ROOT, SMOKE_CONFIG, Paths
from src.common.servers import free_port, stop_server
from tests.conftest import wait_or_fail

CLOCK = pd.Timestamp("2013-08-15T12:00Z")
START = pd.Timestamp("2013-08-06T00:00Z")  # the feed's first events: a window, not the year
APP = ROOT / "dashboard" / "app.py"
SERVER_START_S = 120  # generous: a cold start on 2 busy cores


def fed_data_dir(paths: Paths, folder: Path) -> Path:
    """`folder` as a data folder whose online store (SQLite) is fed START..CLOCK."""
    from src.common.config import load_config
    from src.data.validate import read_snapshot
    from src.featurestore.offline import build_views
    from src.featurestore.online import feed
    from src.featurestore.online_sqlite import SQLiteStore
    from src.featurestore.views import VIEWS

    raw = read_snapshot(paths, load_config(SMOKE_CONFIG).snapshot)
    tables = build_views(raw)
    window = {n: t[t[VIEWS[n].event_time].between(START, CLOCK)] for n, t in tables.items()}
    with SQLiteStore(folder / "online" / "features.sqlite") as store:
        feed(store, window, until=CLOCK)
    return folder


def api_env(data: Path) -> dict[str, str]:
    """This session's relocated paths, the smoke config, the fed data folder; no key."""
    env = {**os.environ, "FD_CONFIG": str(SMOKE_CONFIG), "FD_DATA_DIR": str(data)}
    env.update(OMP_NUM_THREADS="1", MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    for key in ("FD_API_KEY", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    return env


def start_api(data: Path, log: Path) -> Iterator[str]:
    """uvicorn app.main:app on a free loopback port; yields its URL, stops it after."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--log-level", "warning"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=api_env(data), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_or_fail(f"{base}/ready", proc, log, timeout=SERVER_START_S)
            yield base
        finally:
            stop_server(proc, signal.SIGINT)  # graceful: the API flushes its prediction log


@pytest.fixture(scope="module")
def api_url(smoke_pipeline, tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("dashboard-api")
    data = fed_data_dir(smoke_pipeline, folder / "data")
    yield from start_api(data, folder / "api.log")
