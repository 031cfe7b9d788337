"""`python -m src.register`'s errors, as a user meets them: each is a non-zero exit code and
one line naming what is missing, never a traceback. On a temporary project tree (an empty
store), or on the smoke pipeline's store under a fresh model name.

One test runs the command line itself, in a subprocess: `python -m src.register` on a real
store, its exit code 1 and its one ERROR line on stderr without a traceback (the wiring
`main` -> `run_stage` -> logging). The others call the same `main(argv)` in-process (each
subprocess only paid Python's start and MLflow's import again, 3-5 s, 18-38 s on a busy
machine): the same exit code, exactly one ERROR record and no exception escaping `main`
(which in a subprocess is the traceback), and argparse's own exit 2 and usage on stderr."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import yaml

from src import register
from src.common.config import read_raw
from src.common.paths import ROOT, SMOKE_CONFIG
from src.common.servers import free_port
from tests.conftest import point_paths_at
from tests.integration.support import ARGS, CFG, runs_of

pytestmark = pytest.mark.slow


def register_cli(args: list[str], **env: str) -> subprocess.CompletedProcess:
    """`python -m src.register` in a subprocess, as a user runs it."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    cmd = [sys.executable, "-m", "src.register", *args]
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=300)


def cli_error_line(done: subprocess.CompletedProcess) -> str:
    """The one error line of a failed run (exit 1, no traceback)."""
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, done.stderr[-2000:]
    return errors[0]


@pytest.fixture
def run(monkeypatch, caplog):
    """run(args, **env): `register.main(args)` in this process with `env` set; returns its
    one error line (exit code 1, exactly one ERROR record; an exception escaping main, the
    subprocess's traceback, fails the test)."""

    def call(args: list[str], **env: str) -> str:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            code = register.main(args)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert code == 1, caplog.text[-2000:]
        assert len(errors) == 1 and errors[0].exc_info is None, caplog.text[-2000:]
        return errors[0].getMessage()

    return call


@pytest.fixture(scope="module")
def empty_project(tmp_path_factory) -> dict[str, str]:
    """FD_* variables of a project tree with nothing trained (a fresh SQLite store)."""
    return point_paths_at(tmp_path_factory.mktemp("empty-project"))


def test_nothing_trained_names_the_experiment_and_the_stage_to_run(run, empty_project):
    line = run(ARGS, **empty_project)
    assert "ModelNotFoundError" in line
    assert f"experiment '{CFG.train.experiment}': no finished candidate run" in line
    assert "python -m src.train" in line


def test_rollback_without_a_champion_says_so(run, empty_project):
    line = run([*ARGS, "--rollback"], **empty_project)
    assert f"{CFG.registry.model_name}@champion is not set: nothing to roll back" in line


def test_unknown_run_id_is_one_line_naming_the_run(run, empty_project):
    line = run([*ARGS, "--run-id", "0123456789abcdef"], **empty_project)
    assert "PipelineError" in line and "0123456789abcdef not found" in line
    assert "sqlite:///" in line  # which store was asked


def test_unreachable_tracking_server_is_one_line_naming_it(run, empty_project):
    url = f"http://127.0.0.1:{free_port()}"  # a closed loopback port: refused at once
    # MLflow retries a refused connection for minutes by default; one try is enough here.
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    line = run(ARGS, **empty_project, MLFLOW_TRACKING_URI=url, **quick)
    assert line.split("PipelineError: ", 1)[1].startswith(url)
    assert "Connection refused" in line


def test_gate_without_window_is_refused(run, empty_project):
    line = run([*ARGS, "--gate"], **empty_project)
    assert "--gate needs --window" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--alias", "staging"], "argument --alias: invalid choice: 'staging'"),
    ],
)
def test_bad_flags_exit_2_with_usage(args, message, empty_project, monkeypatch, capsys):
    for key, value in empty_project.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exited:  # argparse exits: `python -m` exits 2
        register.main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m src.register")
    assert message in err.splitlines()[-1]


def test_rollback_with_one_champion_names_the_version(
    smoke_pipeline, mlflow_client, tmp_path, monkeypatch
):
    """A model registered once has no earlier champion: refused, and @champion stays. The
    refusal comes from the real command line, in a subprocess (the suite's one): exit code
    1 and one ERROR line on stderr, no traceback. The registration before it is the same
    stage's `main`, run in-process."""
    name = "flight-delay-cli-rollback"
    config = tmp_path / "config.yml"
    raw = read_raw(SMOKE_CONFIG)
    config.write_text(yaml.safe_dump({**raw, "registry": {**raw["registry"], "model_name": name}}))
    # The smoke store, but models/ of its own: the shared export and alias histories stay.
    env = {"FD_MODELS_DIR": str(tmp_path / "models")}
    monkeypatch.setenv("FD_MODELS_DIR", env["FD_MODELS_DIR"])
    run_id = runs_of(mlflow_client, "candidate")[0].info.run_id
    assert register.main(["--config", str(config), "--run-id", run_id]) == 0
    version = mlflow_client.get_model_version_by_alias(name, "champion").version

    line = cli_error_line(register_cli(["--config", str(config), "--rollback"], **env))

    assert f"{name}: no earlier champion than version {version} to roll back to" in line
    assert mlflow_client.get_model_version_by_alias(name, "champion").version == version
