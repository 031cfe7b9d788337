"""MLflow connection and lineage: the embedded SQLite store by default, any tracking server
via MLFLOW_TRACKING_URI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from src.common.config import Config
from src.common.io import read_json, sha256_file
from src.common.paths import ROOT, Paths
from src.common.settings import Settings

# Run tags that tie a model to its code, data and config; copied onto every registered
# version, shown by the API's /model, checked by `src.reproduce`.
LINEAGE_TAGS = (
    "git_commit",
    "data_manifest_sha256",
    "raw_snapshot_sha256",
    "config_name",
    "config_hash",
)


def connect(paths: Paths) -> str:
    """Point MLflow at the tracking store and return its URI (called from `main`, never at
    import time)."""
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep logs readable
    uri = paths.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    users = Settings().mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    # mlflow also writes the URI into os.environ; undo that, so a later get_paths() in this
    # process still sees only what the user set (the loop's sandbox store must not leak).
    if users is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = users
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
        sha = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def lineage_tags(paths: Paths, cfg: Config) -> dict[str, str]:
    """LINEAGE_TAGS for a run trained now on the processed data in `paths`."""
    manifest = paths.processed_manifest
    return {
        "git_commit": git_commit(),
        "data_manifest_sha256": sha256_file(manifest),
        "raw_snapshot_sha256": read_json(manifest)["raw_snapshot_sha256"],
        "config_name": cfg.name,
        "config_hash": cfg.hash,
    }
