"""Shared fixtures: the smoke pipeline run once, for real, into a temporary project tree.

The suite starts from a clean environment: every FD_* and MLFLOW_* variable of the user's
shell, and PROMETHEUS_MULTIPROC_DIR, are set aside from the start (collection included)
until the run ends (an API key, a tracking server or a metrics folder of the user's must not
change what the tests see). Under pytest-xdist that holds in every worker: the controller
clears them before it starts the workers, and each worker clears them again.

The smoke pipeline is built once per run. Under xdist the first worker that needs it builds
it in the run's shared temporary folder (a file lock makes the others wait), and every
worker works on its own copy: a test that changes the store (a new run, a moved alias)
changes only its worker's copy, as it changed the one store of a serial run.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pandas as pd
import pytest
from filelock import FileLock
from hypothesis import settings

from src.common.errors import PipelineError
from src.common.paths import ROOT, SMOKE_CONFIG, Paths, get_paths
from src.common.servers import free_port, stop_server, wait_http
from src.tracking.store import connect

PATH_VARS = ("FD_DATA_DIR", "FD_MODELS_DIR", "FD_REPORTS_DIR", "FD_MLFLOW_DIR")
USER_VARS = ("PROMETHEUS_MULTIPROC_DIR",)  # plus every FD_* and MLFLOW_* variable
# CI runs the same generated cases every time (a failure there reproduces locally with
# HYPOTHESIS_PROFILE=ci); by hand, hypothesis explores new cases each run.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the files for pytest-xdist (each file runs on one worker, in this order). The
    first file that needs the smoke pipeline goes first: its worker builds the store while
    the others run the files that need none, which come next; then the other smoke files.
    In each group the files with a slow test go first, so that no long file starts last and
    runs alone."""
    smoke = {item.path for item in items if "smoke_pipeline" in getattr(item, "fixturenames", ())}
    slow = {item.path for item in items if item.get_closest_marker("slow")}

    def group(item: pytest.Item) -> tuple[bool, bool]:
        return item.path in smoke, item.path not in slow

    first = next((item.path for item in sorted(items, key=group) if item.path in smoke), None)
    items.sort(key=lambda item: (item.path != first, *group(item)))  # stable: file order kept


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


def make_paths(root: Path) -> Paths:
    """The path catalog of a project tree under `root` (what point_paths_at gives)."""
    return Paths(
        data=root / "data", models=root / "models", reports=root / "reports", mlflow=root / "mlruns"
    )


USERS_SETTINGS = pytest.StashKey[dict[str, str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[USERS_SETTINGS] = {k: os.environ.pop(k) for k in user_variables()}


def pytest_unconfigure(config: pytest.Config) -> None:
    for key in user_variables():  # the suite's own
        os.environ.pop(key, None)
    os.environ.update(config.stash.get(USERS_SETTINGS, {}))


@pytest.fixture(scope="session", autouse=True)
def isolated_paths(tmp_path_factory) -> Path:
    """No test ever writes into the repo's data/, models/, reports/ or mlruns/: returns the
    session's project tree, where every FD_*_DIR points."""
    root = tmp_path_factory.mktemp("project")
    os.environ.update(point_paths_at(root))
    os.environ["FD_CONFIG"] = str(SMOKE_CONFIG)
    # MLflow and Evidently send usage telemetry by default: nothing may leave loopback.
    os.environ.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
    return root


@pytest.fixture(scope="module", autouse=True)
def tracking_store_after_each_file() -> Iterator[None]:
    """Each test file leaves MLflow pointed at the session's store: under xdist a file may
    follow any other on its worker, and one that pointed MLflow at a server of its own (since
    stopped) must not hand that to the next."""
    yield
    if "mlflow" in sys.modules:
        connect(get_paths())


def run_smoke_stages(root: Path) -> None:
    """ingest -> features -> preprocess -> train -> register on the smoke slice, into `root`."""
    from src import features, ingest, preprocess, register, train

    saved = {k: os.environ[k] for k in PATH_VARS}
    os.environ.update(point_paths_at(root))
    try:
        for stage in (ingest, features, preprocess, train, register):
            assert stage.main(["--config", str(SMOKE_CONFIG)]) == 0, f"{stage.__name__} failed"
    finally:
        os.environ.update(saved)


# Every text value holding ?1 gets ?2 in its place (run per table and column).
REPLACE_TEXT = """UPDATE "{table}" SET "{column}" = replace("{column}", ?1, ?2)
WHERE typeof("{column}") = 'text' AND instr("{column}", ?1) > 0"""


def copy_project(source: Path, dest: Path) -> None:
    """Copy a project tree. MLflow keeps absolute artifact URIs (in its SQLite store and in
    each MLmodel file), so every `source` path in them is rewritten to `dest`: the copy
    shares no file with the original."""
    shutil.copytree(source, dest, dirs_exist_ok=True)
    old, new = str(source), str(dest)
    store = Path(make_paths(dest).tracking_uri.removeprefix("sqlite:///"))
    with closing(sqlite3.connect(store)) as db, db:
        tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        for (table,) in tables:
            for column in [c[1] for c in db.execute(f"PRAGMA table_info('{table}')")]:
                db.execute(REPLACE_TEXT.format(table=table, column=column), (old, new))
    for path in dest.rglob("*"):
        if path != store and path.is_file() and old.encode() in (data := path.read_bytes()):
            path.write_bytes(data.replace(old.encode(), new.encode()))


@pytest.fixture(scope="session")
def smoke_pipeline(isolated_paths, tmp_path_factory, worker_id) -> Paths:
    """The smoke pipeline (ingest -> features -> preprocess -> train -> register on Jan/Feb/Mar) in the
    session's project tree. Under xdist it is built once, under a lock in the run's shared
    temporary folder, and copied into each worker's tree."""
    if worker_id == "master":  # no xdist: build in place
        run_smoke_stages(isolated_paths)
    else:
        shared = tmp_path_factory.getbasetemp().parent
        built, done = shared / "smoke-store", shared / "smoke-store.done"
        with FileLock(shared / "smoke-store.lock"):
            if not done.is_file():
                shutil.rmtree(built, ignore_errors=True)  # what a failed build left
                run_smoke_stages(built)
                done.touch()
        copy_project(built, isolated_paths)
    paths = get_paths()
    connect(paths)  # MLflow's global tracking URI: this tree's store
    return paths


@pytest.fixture(scope="module")
def mlflow_client(smoke_pipeline):
    """A client on the smoke pipeline's tracking store."""
    from mlflow import MlflowClient

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
    # Not measured by `make test`'s coverage: none of our code runs in a tracking server,
    # and tracing MLflow's own would only slow every test that starts one.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env |= {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runners
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
