"""Load the champion: from the MLflow registry alias when reachable, else from the export
in models/champion/ (written by `python -m src.register`), so serving needs no server."""

from __future__ import annotations

import base64
import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from src.common.config import Config
from src.common.errors import ModelNotFoundError
from src.common.io import read_json
from src.common.paths import Paths
from src.servable import (
    SERVABLE_ARTIFACT,
    Servable,
    from_model,
    read_servable,
    servable_from_bytes,
)

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
    model: Servable
    name: str
    version: str
    alias: str
    source: str  # "registry" | "export"
    run_id: str | None
    metadata: dict
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


@dataclass(frozen=True)
class RegistryVersion:
    version: str
    run_id: str | None
    tags: dict


def registry_version(cfg: Config, paths: Paths) -> RegistryVersion:
    """The version the alias points at; raises if the store or the alias is unavailable.
    A tracking server is asked over its REST API, so polling needs no MLflow import."""
    name, alias = cfg.registry.model_name, cfg.registry.alias
    uri = paths.tracking_uri
    if uri.startswith(("http://", "https://")):
        return _alias_over_rest(uri, name, alias)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ModelNotFoundError(f"{uri}: no local tracking store")
    from mlflow import MlflowClient

    from src.common.tracking import connect

    connect(paths)
    mv = MlflowClient().get_model_version_by_alias(name, alias)
    return RegistryVersion(str(mv.version), mv.run_id, dict(mv.tags or {}))


def _rest(uri: str, path: str, params: dict | None = None) -> bytes:
    """GET from a tracking server with MLflow's auth variables (no MLflow import)."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    request = urllib.request.Request(f"{uri.rstrip('/')}/{path}{query}")
    if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
        request.add_header("Authorization", f"Bearer {token}")
    elif user := os.environ.get("MLFLOW_TRACKING_USERNAME"):
        secret = base64.b64encode(
            f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
        )
        request.add_header("Authorization", f"Basic {secret.decode()}")
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read()


def _alias_over_rest(uri: str, name: str, alias: str) -> RegistryVersion:
    try:
        body = _rest(uri, "api/2.0/mlflow/registered-models/alias", {"name": name, "alias": alias})
    except urllib.error.HTTPError as exc:
        raise ModelNotFoundError(
            f"{uri}: {name}@{alias}: HTTP {exc.code} {exc.read()[:200]!r}"
        ) from None
    mv = json.loads(body)["model_version"]
    tags = {t["key"]: t["value"] for t in mv.get("tags", [])}
    return RegistryVersion(str(mv["version"]), mv.get("run_id"), tags)


def _servable_over_rest(uri: str, name: str, version: str) -> Servable | None:
    """A version's artifacts/servable.pkl, fetched from the tracking server or read from
    a local artifact store. None when the version has none (logged before it was added)
    or its store needs MLflow's own clients (S3, ...)."""
    query = {"name": name, "version": version}
    body = _rest(uri, "api/2.0/mlflow/model-versions/get-download-uri", query)
    location = json.loads(body)["artifact_uri"]
    path = urllib.parse.urlparse(location).path
    try:
        if location.startswith("mlflow-artifacts:"):
            artifact = f"{path.strip('/')}/{SERVABLE_ARTIFACT}"
            data = _rest(uri, f"api/2.0/mlflow-artifacts/artifacts/{artifact}")
        elif location.startswith(("file:", "/")):
            data = (Path(path) / SERVABLE_ARTIFACT).read_bytes()
        else:
            return None
    except (FileNotFoundError, urllib.error.HTTPError) as exc:
        if getattr(exc, "code", 404) != 404:
            raise
        return None
    return servable_from_bytes(data)


def _run_over_rest(uri: str, run_id: str | None) -> tuple[dict, dict]:
    if not run_id:
        return {}, {}
    data = json.loads(_rest(uri, "api/2.0/mlflow/runs/get", {"run_id": run_id}))["run"]["data"]
    metrics = {m["key"]: m["value"] for m in data.get("metrics", [])}
    return metrics, {t["key"]: t["value"] for t in data.get("tags", [])}


def load_version(cfg: Config, paths: Paths, version: RegistryVersion) -> LoadedModel:
    """Load one registered version (by number, so a moving alias cannot race the load).
    From a tracking server: its servable form over REST, about a second and no MLflow
    import. Otherwise, or for versions without one: MLflow's pyfunc."""
    name, uri = cfg.registry.model_name, paths.tracking_uri
    servable = None
    if uri.startswith(("http://", "https://")):
        servable = _servable_over_rest(uri, name, version.version)
    if servable is not None:
        metrics, run_tags = _run_over_rest(uri, version.run_id)
    else:
        servable, metrics, run_tags = _load_pyfunc(paths, name, version)
    lineage = {k: v for k, v in run_tags.items() if k in LINEAGE_TAGS}
    return LoadedModel(
        servable,
        name,
        str(version.version),
        cfg.registry.alias,
        "registry",
        version.run_id,
        {"metrics": metrics, **lineage, **version.tags},
    )


def _load_pyfunc(paths: Paths, name: str, version: RegistryVersion):
    import mlflow
    from mlflow import MlflowClient

    from src.common.tracking import connect

    connect(paths)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
    run = MlflowClient().get_run(version.run_id) if version.run_id else None
    metrics, tags = (run.data.metrics, run.data.tags) if run else ({}, {})
    return from_model(model.unwrap_python_model()), metrics, tags


def load_from_registry(cfg: Config, paths: Paths) -> LoadedModel:
    return load_version(cfg, paths, registry_version(cfg, paths))


def load_from_export(folder: Path) -> LoadedModel:
    """The export's servable form: no MLflow import, about a second to load."""
    meta_path = folder / "metadata.json"
    if not meta_path.is_file():
        raise ModelNotFoundError(f"{meta_path}: no exported champion; run `python -m src.register`")
    meta = read_json(meta_path)
    return LoadedModel(
        read_servable(folder),
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
