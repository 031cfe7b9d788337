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


def _unwrap(pyfunc_model):
    return pyfunc_model.unwrap_python_model()


def load_from_registry(cfg: Config, paths: Paths) -> LoadedModel:
    """Champion via the registry alias; raises if the store or the alias is unavailable."""
    import mlflow
    from mlflow import MlflowClient

    from src.common.tracking import connect

    uri = paths.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ModelNotFoundError(f"{uri}: no local tracking store")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail fast, fall back
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    connect(paths)
    name, alias = cfg.registry.model_name, cfg.registry.alias
    version = MlflowClient().get_model_version_by_alias(name, alias)
    model = mlflow.pyfunc.load_model(f"models:/{name}@{alias}")
    run = MlflowClient().get_run(version.run_id) if version.run_id else None
    meta = {"metrics": run.data.metrics if run else {}, **(version.tags or {})}
    return LoadedModel(
        _unwrap(model), name, str(version.version), alias, "registry", version.run_id, meta
    )


def load_from_export(folder: Path) -> LoadedModel:
    import mlflow

    meta_path = folder / "metadata.json"
    if not meta_path.is_file():
        raise ModelNotFoundError(f"{meta_path}: no exported champion; run `python -m src.register`")
    meta = read_json(meta_path)
    model = mlflow.pyfunc.load_model(str(folder))
    return LoadedModel(
        _unwrap(model),
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
