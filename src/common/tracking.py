"""MLflow connection: the embedded SQLite store by default, any server via MLFLOW_TRACKING_URI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from src.common.paths import ROOT, Paths


def connect(paths: Paths) -> str:
    """Point MLflow at the tracking store and return its URI (called from `main`, never at
    import time)."""
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep logs readable
    uri = paths.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    user_setting = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    # mlflow also writes the URI into os.environ; undo that, so a later get_paths() in this
    # process still sees only what the user set (the loop's sandbox store must not leak).
    if user_setting is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = user_setting
    return uri


def experiment_id(name: str, paths: Paths) -> str:
    """Get or create the experiment; with the embedded store, artifacts go under mlruns/."""
    import mlflow

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if paths.tracking_uri.startswith("sqlite:///"):
        location = (paths.artifacts / name).resolve().as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def git_commit() -> str:
    """HEAD's commit, suffixed '-dirty' when tracked files changed; 'unknown' outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha
