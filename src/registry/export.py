"""The export: the champion copied out of the registry into models/champion/ (the MLflow
model, metadata.json, and config.json: the config the API serves it with), so the API and a
container image serve with no tracking server."""

from __future__ import annotations

import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from src.common.config import Config
from src.common.errors import ModelNotFoundError
from src.common.io import write_atomic, write_json
from src.common.paths import Paths
from src.registry.card import render_model_card
from src.registry.versions import CHAMPION
from src.tracking.runs import load_reliability, load_slices
from src.tracking.store import LINEAGE_TAGS

log = logging.getLogger(__name__)


def metadata(version, run, cfg: Config) -> dict:
    tags = run.data.tags
    return {
        "name": version.name,
        "version": int(version.version),
        "alias": CHAMPION,
        "run_id": run.info.run_id,
        "model_kind": run.data.params.get("model"),
        "metrics": dict(sorted(run.data.metrics.items())),
        **{key: tags.get(key) for key in LINEAGE_TAGS},
        "threshold": cfg.serve.threshold,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def export(model_uri: str, meta: dict, cfg: Config, paths: Paths) -> None:
    """Download the model and swap it into models/champion/ in one rename; the old copy is
    removed only after the new one is in place."""
    target = paths.champion
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(staging))
        write_json(staging / paths.champion_metadata.name, meta)
        write_json(staging / paths.champion_config.name, cfg.model_dump())
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("exported %s to %s", model_uri, target)


def publish_champion(client: MlflowClient, cfg: Config, paths: Paths) -> None:
    name = cfg.registry.model_name
    version = client.get_model_version_by_alias(name, CHAMPION)
    if version.run_id is None:  # src.registry.versions creates every version from a run
        raise ModelNotFoundError(f"{name} v{version.version}: no run to read its card from")
    run = client.get_run(version.run_id)
    meta = metadata(version, run, cfg)
    export(f"models:/{name}@{CHAMPION}", meta, cfg, paths)
    card = paths.model_card(name)
    slices = load_slices(client, run.info.run_id)
    text = render_model_card(meta, run.data.params, slices)
    write_atomic(card, lambda p: p.write_text(text))
    reliability = load_reliability(client, run.info.run_id)
    for kind, table in (("slices", slices), ("reliability", reliability)):
        target = paths.model_card_data(name, kind)
        if table is None:  # a run without them: no stale file of an earlier champion
            target.unlink(missing_ok=True)
        else:
            write_json(target, table)
    log.info("model card written to %s", card)
