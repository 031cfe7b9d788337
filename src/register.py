"""Stage 4: register the candidate, point the alias at it, export it for serving.

    python -m src.register [--config configs/default.yml] [--run-id RUN_ID]

Registers the run's model in the MLflow registry, moves the alias (default `champion`) to
the new version, exports it to models/champion/ (MLflow model + metadata.json) so serving
needs no tracking server, and regenerates the model card from the run.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from src.common.config import Config, load_config
from src.common.errors import ModelNotFoundError
from src.common.io import write_atomic, write_json
from src.common.logs import run_stage
from src.common.paths import DEFAULT_CONFIG, ROOT, get_paths
from src.common.tracking import connect, experiment_id
from src.model_card import render_model_card

log = logging.getLogger("register")
METADATA = "metadata.json"
LINEAGE_TAGS = ("git_commit", "data_manifest_sha256", "raw_snapshot_sha256", "config_hash")


def latest_candidate(client: MlflowClient, experiment: str) -> str:
    exp = client.get_experiment_by_name(experiment)
    runs = []
    if exp is not None:
        runs = client.search_runs(
            [exp.experiment_id],
            "tags.role = 'candidate' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
    if not runs:
        raise ModelNotFoundError(
            f"experiment '{experiment}': no finished candidate run; run `python -m src.train`"
        )
    return runs[0].info.run_id


def register(client: MlflowClient, run_id: str, cfg: Config):
    """Create a model version from the run and move the alias to it."""
    run = client.get_run(run_id)
    name, alias = cfg.registry.model_name, cfg.registry.alias
    model_uri = run.data.tags.get("model_uri") or f"runs:/{run_id}/model"
    version = mlflow.register_model(model_uri, name)
    tags = {k: run.data.tags.get(k, "") for k in LINEAGE_TAGS}
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, value)
    client.set_registered_model_alias(name, alias, version.version)
    log.info("registered %s version %s and set @%s", name, version.version, alias)
    return version, run


def metadata(version, run, cfg: Config) -> dict:
    tags = run.data.tags
    return {
        "name": version.name,
        "version": int(version.version),
        "alias": cfg.registry.alias,
        "run_id": run.info.run_id,
        "model_kind": run.data.params.get("model"),
        "metrics": dict(sorted(run.data.metrics.items())),
        "data_manifest_sha256": tags.get("data_manifest_sha256"),
        "raw_snapshot_sha256": tags.get("raw_snapshot_sha256"),
        "git_commit": tags.get("git_commit"),
        "config_name": tags.get("config_name"),
        "config_hash": tags.get("config_hash"),
        "threshold": cfg.serve.threshold,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def export(model_uri: str, meta: dict, target: Path) -> None:
    """Download the model and swap it into `target` in one rename; the old copy is removed
    only after the new one is in place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(staging))
        write_json(staging / METADATA, meta)
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("exported %s to %s", model_uri, target)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.register", description=__doc__.split("\n")[0])
    p.add_argument("--config", default=DEFAULT_CONFIG, help="pipeline config YAML")
    p.add_argument("--run-id", help="run to register (default: the latest candidate run)")
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    connect(paths)
    experiment_id(cfg.train.experiment, paths)
    client = MlflowClient()
    run_id = args.run_id or latest_candidate(client, cfg.train.experiment)
    version, run = register(client, run_id, cfg)
    meta = metadata(version, run, cfg)
    export(f"models:/{cfg.registry.model_name}@{cfg.registry.alias}", meta, paths.champion)
    card = (
        ROOT / cfg.registry.model_card
        if cfg.registry.model_card
        else paths.reports / "model_card" / f"{cfg.registry.model_name}.md"
    )
    write_atomic(card, lambda p: p.write_text(render_model_card(meta, run.data.params)))
    log.info("model card written to %s", card)
    return 0


def main(argv=None) -> int:
    return run_stage("register", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
