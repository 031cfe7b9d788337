"""`python -m src.register`'s errors, as a user meets them: each is a non-zero exit code and
one line naming what is missing, never a traceback. Run as subprocesses on a temporary
project tree (an empty store), or on the smoke pipeline's store under a fresh model name."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from src.common.config import read_raw
from src.common.paths import ROOT, SMOKE_CONFIG
from src.common.servers import free_port
from tests.conftest import point_paths_at
from tests.integration.support import ARGS, CFG, runs_of

pytestmark = pytest.mark.slow


def register(args: list[str], **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    cmd = [sys.executable, "-m", "src.register", *args]
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=300)


def error_line(done: subprocess.CompletedProcess) -> str:
    """The one error line of a failed run (exit 1, no traceback)."""
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, done.stderr[-2000:]
    return errors[0]


@pytest.fixture(scope="module")
def empty_project(tmp_path_factory) -> dict[str, str]:
    """FD_* variables of a project tree with nothing trained (a fresh SQLite store)."""
    return point_paths_at(tmp_path_factory.mktemp("empty-project"))


def test_nothing_trained_names_the_experiment_and_the_stage_to_run(empty_project):
    line = error_line(register(ARGS, **empty_project))
    assert "ModelNotFoundError" in line
    assert f"experiment '{CFG.train.experiment}': no finished candidate run" in line
    assert "python -m src.train" in line


def test_rollback_without_a_champion_says_so(empty_project):
    line = error_line(register([*ARGS, "--rollback"], **empty_project))
    assert f"{CFG.registry.model_name}@champion is not set: nothing to roll back" in line


def test_unknown_run_id_is_one_line_naming_the_run(empty_project):
    line = error_line(register([*ARGS, "--run-id", "0123456789abcdef"], **empty_project))
    assert "PipelineError" in line and "0123456789abcdef not found" in line
    assert "sqlite:///" in line  # which store was asked


def test_unreachable_tracking_server_is_one_line_naming_it(empty_project):
    url = f"http://127.0.0.1:{free_port()}"  # a closed loopback port: refused at once
    # MLflow retries a refused connection for minutes by default; one try is enough here.
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    line = error_line(register(ARGS, **empty_project, MLFLOW_TRACKING_URI=url, **quick))
    assert line.split("PipelineError: ", 1)[1].startswith(url)
    assert "Connection refused" in line


def test_gate_without_window_is_refused(empty_project):
    line = error_line(register([*ARGS, "--gate"], **empty_project))
    assert "--gate needs --window" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--alias", "staging"], "argument --alias: invalid choice: 'staging'"),
    ],
)
def test_bad_flags_exit_2_with_usage(args, message, empty_project):
    done = register(args, **empty_project)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("usage: python -m src.register")
    assert message in done.stderr.splitlines()[-1]


def test_rollback_with_one_champion_names_the_version(smoke_pipeline, mlflow_client, tmp_path):
    """A model registered once has no earlier champion: refused, and @champion stays."""
    name = "flight-delay-cli-rollback"
    config = tmp_path / "config.yml"
    raw = read_raw(SMOKE_CONFIG)
    config.write_text(yaml.safe_dump({**raw, "registry": {**raw["registry"], "model_name": name}}))
    # The smoke store, but models/ of its own: the shared export and alias histories stay.
    env = {"FD_MODELS_DIR": str(tmp_path / "models")}
    run_id = runs_of(mlflow_client, "candidate")[0].info.run_id
    done = register(["--config", str(config), "--run-id", run_id], **env)
    assert done.returncode == 0, done.stderr[-2000:]
    version = mlflow_client.get_model_version_by_alias(name, "champion").version

    line = error_line(register(["--config", str(config), "--rollback"], **env))

    assert f"{name}: no earlier champion than version {version} to roll back to" in line
    assert mlflow_client.get_model_version_by_alias(name, "champion").version == version
