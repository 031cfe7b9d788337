"""The suite's own isolation (tests/conftest.py), which pytest-xdist relies on: each worker's
smoke store refers only to its own files, and no setting of the user's shell reaches a test,
from collection on, in any worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.common.paths import ROOT, SMOKE_CONFIG, Paths
from src.tracking.store import connect
from tests.conftest import copy_project, make_paths, user_variables
from tests.integration.support import CFG

# The user's settings the last test starts the suite with: each value holds this mark.
MARK = "from-the-users-shell"


def users_settings() -> list[str]:
    return [k for k in user_variables() if MARK in os.environ[k]]


AT_COLLECTION = users_settings()  # when pytest imports this file


def champion_locations(paths: Paths) -> list[str]:
    """Where the smoke champion's files are, as the store of `paths` records them: its
    experiment's artifact root, its run's artifacts and the registered version's files."""
    from mlflow import MlflowClient

    connect(paths)
    client = MlflowClient()
    version = client.get_model_version_by_alias(CFG.registry.model_name, "champion")
    experiment = client.get_experiment_by_name(CFG.train.experiment)
    run = client.get_run(version.run_id)
    files = client.get_model_version_download_uri(version.name, version.version)
    return [experiment.artifact_location, run.info.artifact_uri, files]


def test_the_smoke_store_names_only_its_own_files(smoke_pipeline):
    """Under xdist each worker's store is a copy of the one built for the run: every location
    in it must be the copy's own, or a worker would read (and write) another's files."""
    root = smoke_pipeline.data.parent.as_uri()
    for location in champion_locations(smoke_pipeline):
        assert location.startswith(f"{root}/"), f"{location} lies outside {root}"


def test_a_copied_project_shares_no_file_with_the_original(smoke_pipeline, tmp_path):
    original, copy = smoke_pipeline.data.parent, tmp_path / "copy"
    copy_project(original, copy)
    try:
        named = [p for p in copy.rglob("*") if p.is_file() and bytes(original) in p.read_bytes()]
        assert not named, f"files of the copy naming {original}: {named}"
        for location in champion_locations(make_paths(copy)):
            assert location.startswith(f"{copy.as_uri()}/"), location
    finally:
        connect(smoke_pipeline)


def test_no_setting_of_the_users_shell_reaches_a_test():
    assert AT_COLLECTION == [], "seen while the tests were collected"
    assert users_settings() == []
    assert os.environ["FD_CONFIG"] == str(SMOKE_CONFIG)


@pytest.mark.slow
def test_no_setting_of_the_users_shell_reaches_an_xdist_worker(tmp_path):
    """The check above, run by two pytest-xdist workers (--dist each: both run it) started
    from a shell with an API key, another config, a tracking server and a metrics folder."""
    users = {
        "FD_API_KEY": MARK,
        "FD_CONFIG": f"/{MARK}/config.yml",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:9/{MARK}",
        "PROMETHEUS_MULTIPROC_DIR": f"/{MARK}/metrics",
    }
    probe = test_no_setting_of_the_users_shell_reaches_a_test.__name__
    cmd = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "each", "-p", "no:cacheprovider"]
    cmd += [
        "--basetemp",
        str(tmp_path / "run"),
        "-q",
        f"{Path(__file__).relative_to(ROOT)}::{probe}",
    ]
    done = subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, **users}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 passed" in done.stdout, done.stdout[-1000:]
