"""Load the champion: from the MLflow registry alias when reachable, else from the export
in models/champion/ (written by `python -m src.register`), so serving needs no server."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from src.common.config import Config
from src.common.errors import ModelNotFoundError
from src.common.io import read_json
from src.common.paths import Paths

log = logging.getLogger("champion")
# Run tags written by src.train.lineage_tags, shown by the API's /model.
LINEAGE_TAGS = (
    "git_commit",
    "data_manifest_sha256",
    "raw_snapshot_sha256",
    "config_name",
    "config_hash",
)


@dataclass
class LoadedModel:
    model: object  # src.model.FlightDelayModel
    name: str
    version: str
    alias: str
    source: str  # "registry" | "export"
    run_id: str | None
    metadata: dict
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def registry_version(cfg: Config, paths: Paths):
    """The ModelVersion the alias points at; raises if the store or the alias is unavailable."""
    from mlflow import MlflowClient

    from src.common.tracking import connect

    uri = paths.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ModelNotFoundError(f"{uri}: no local tracking store")
    # Serving fails fast when a tracking server is down: it keeps its model and asks again
    # on the next poll, rather than waiting through minutes of HTTP retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    connect(paths)
    return MlflowClient().get_model_version_by_alias(cfg.registry.model_name, cfg.registry.alias)


def load_version(cfg: Config, version) -> LoadedModel:
    """Load one registered version (by number, so a moving alias cannot race the load)."""
    import mlflow
    from mlflow import MlflowClient

    name = cfg.registry.model_name
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
    run = MlflowClient().get_run(version.run_id) if version.run_id else None
    lineage = {k: v for k, v in (run.data.tags if run else {}).items() if k in LINEAGE_TAGS}
    meta = {"metrics": run.data.metrics if run else {}, **lineage, **(version.tags or {})}
    return LoadedModel(
        model.unwrap_python_model(),
        name,
        str(version.version),
        cfg.registry.alias,
        "registry",
        version.run_id,
        meta,
    )


def load_from_registry(cfg: Config, paths: Paths) -> LoadedModel:
    return load_version(cfg, registry_version(cfg, paths))


def load_from_export(folder: Path) -> LoadedModel:
    import mlflow

    meta_path = folder / "metadata.json"
    if not meta_path.is_file():
        raise ModelNotFoundError(f"{meta_path}: no exported champion; run `python -m src.register`")
    meta = read_json(meta_path)
    model = mlflow.pyfunc.load_model(str(folder))
    return LoadedModel(
        model.unwrap_python_model(),
        meta["name"],
        str(meta["version"]),
        meta.get("alias", "champion"),
        "export",
        meta.get("run_id"),
        meta,
    )


def load_champion(cfg: Config, paths: Paths) -> LoadedModel:
    try:
        loaded = load_from_registry(cfg, paths)
    except Exception as exc:  # any registry failure: serve the export instead
        log.warning("registry unavailable (%s); loading %s", str(exc)[:200], paths.champion)
        loaded = load_from_export(paths.champion)
    log.info("serving %s v%s from %s", loaded.name, loaded.version, loaded.source)
    return loaded
