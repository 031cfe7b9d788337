"""Stage 4: the model registry: register, gate, promote, roll back; export the champion.

    python -m src.register [--run-id ID]                  # latest candidate -> @champion
    python -m src.register --alias challenger [--run-id]  # register as @challenger
    python -m src.register --gate --window 10 [11 ...]    # challenger vs champion on months
    python -m src.register --rollback                     # @champion -> previous champion

Every alias move is appended to models/registry/<name>.alias-history.jsonl. A new champion
is exported to models/champion/ (MLflow model + metadata.json) so serving needs no tracking
server, and its model card is regenerated from the run.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from src.alias_history import append_event, history_path, read_history, rollback_target
from src.common.config import Config, load_config
from src.common.errors import ModelNotFoundError, PipelineError
from src.common.io import write_atomic, write_json
from src.common.logs import run_stage
from src.common.paths import DEFAULT_CONFIG, ROOT, Paths, get_paths
from src.common.schema import REQUEST_FIELDS, TARGET
from src.common.tracking import connect, experiment_id
from src.evaluate import binary_metrics
from src.gate import GateResult, decide
from src.model_card import render_model_card
from src.servable import SERVABLE_ARTIFACT, SERVABLE_FILE, write_servable

log = logging.getLogger("register")
METADATA = "metadata.json"
LINEAGE_TAGS = ("git_commit", "data_manifest_sha256", "raw_snapshot_sha256", "config_hash")
CHAMPION, CHALLENGER = "champion", "challenger"


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


def create_version(client: MlflowClient, run_id: str, name: str):
    """A new model version from the run's logged model, carrying its lineage tags."""
    run = client.get_run(run_id)
    model_uri = run.data.tags.get("model_uri") or f"runs:/{run_id}/model"
    version = mlflow.register_model(model_uri, name)
    for key in LINEAGE_TAGS:
        client.set_model_version_tag(name, version.version, key, run.data.tags.get(key, ""))
    return version, run


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def move_alias(client, paths: Paths, name: str, alias: str, version, event: str, **evidence):
    """Point `alias` at `version` and record the move in the alias history."""
    previous = alias_version(client, name, alias)
    client.set_registered_model_alias(name, alias, str(version))
    append_event(
        history_path(paths.models, name),
        model=name,
        alias=alias,
        version=str(version),
        previous_version=previous,
        event=event,
        **evidence,
    )
    log.info("%s: @%s -> version %s (was %s)", event, alias, version, previous)


def metadata(version, run, cfg: Config) -> dict:
    tags = run.data.tags
    return {
        "name": version.name,
        "version": int(version.version),
        "alias": CHAMPION,
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
        if (staging / SERVABLE_ARTIFACT).is_file():  # logged with the model (src/model.py)
            shutil.copyfile(staging / SERVABLE_ARTIFACT, staging / SERVABLE_FILE)
        else:  # a version logged before that: derive it from the pyfunc
            write_servable(mlflow.pyfunc.load_model(str(staging)).unwrap_python_model(), staging)
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


def publish_champion(client: MlflowClient, cfg: Config, paths: Paths) -> None:
    """Export the current champion and regenerate its model card."""
    name = cfg.registry.model_name
    version = client.get_model_version_by_alias(name, CHAMPION)
    run = client.get_run(version.run_id)
    meta = metadata(version, run, cfg)
    export(f"models:/{name}@{CHAMPION}", meta, paths.champion)
    card = (
        ROOT / cfg.registry.model_card
        if cfg.registry.model_card
        else paths.reports / "model_card" / f"{name}.md"
    )
    write_atomic(card, lambda p: p.write_text(render_model_card(meta, run.data.params)))
    log.info("model card written to %s", card)


def window_frame(paths: Paths, months: list[int]) -> pd.DataFrame:
    """Labelled processed rows of the given months (the gate's evaluation window)."""
    files = [paths.processed / f"{s}.parquet" for s in ("train", "validation", "test")]
    frame = pd.concat([pd.read_parquet(f) for f in files if f.is_file()], ignore_index=True)
    window = frame[frame["month"].isin(months)]
    if window.empty:
        raise PipelineError(f"{paths.processed}: no labelled rows for gate window {months}")
    return window.reset_index(drop=True)


def gate(client: MlflowClient, cfg: Config, paths: Paths, window: pd.DataFrame, label: str):
    """Challenger vs champion on a labelled window it did not train on: promote or reject.
    The decision and its evidence go on the challenger's version and into the history."""
    name = cfg.registry.model_name
    champ, chall = alias_version(client, name, CHAMPION), alias_version(client, name, CHALLENGER)
    if champ is None or chall is None:
        raise ModelNotFoundError(f"{name}: the gate needs both @{CHAMPION} and @{CHALLENGER}")
    trained_on = client.get_model_version(name, chall)
    cols = {c: window[c].to_numpy() for c in REQUEST_FIELDS}
    p = {
        alias: mlflow.pyfunc.load_model(f"models:/{name}@{alias}")
        .unwrap_python_model()
        .predict_proba(cols)
        for alias in (CHAMPION, CHALLENGER)
    }
    g = cfg.gate
    result: GateResult = decide(
        window[TARGET].to_numpy(),
        p[CHAMPION],
        p[CHALLENGER],
        n_boot=g.bootstrap,
        seed=cfg.seed,
        alpha=g.alpha,
        max_log_loss_increase=g.max_log_loss_increase,
    )
    trained_months = client.get_run(trained_on.run_id).data.params.get("split_train_months")
    evidence = {
        "window": label,
        "challenger_train_months": trained_months,
        "champion_version": champ,
        **result.as_dict(),
    }
    for key, value in evidence.items():
        client.set_model_version_tag(name, chall, f"gate.{key}", str(value))
    # Out-of-sample figures of the challenger: the monitor's baseline if it becomes champion.
    window_metrics = binary_metrics(window[TARGET].to_numpy(), p[CHALLENGER])
    for key, value in window_metrics.items():
        client.log_metric(trained_on.run_id, f"gate_window_{key}", value)
    log.info(
        "gate on %s (challenger v%s, run %s): %s", label, chall, trained_on.run_id, result.reason
    )
    if result.promote:
        move_alias(client, paths, name, CHAMPION, chall, "promote", evidence=evidence)
        publish_champion(client, cfg, paths)
    else:
        append_event(
            history_path(paths.models, name),
            model=name,
            alias=CHALLENGER,
            version=chall,
            previous_version=champ,
            event="reject",
            evidence=evidence,
        )
    client.delete_registered_model_alias(name, CHALLENGER)
    return result


def rollback(client: MlflowClient, cfg: Config, paths: Paths) -> str:
    name = cfg.registry.model_name
    current = alias_version(client, name, CHAMPION)
    target = rollback_target(read_history(history_path(paths.models, name)), current)
    if target is None:
        raise ModelNotFoundError(
            f"{name}: no earlier champion than version {current} to roll back to"
        )
    move_alias(client, paths, name, CHAMPION, target, "rollback")
    publish_champion(client, cfg, paths)
    return target


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.register", description=__doc__.split("\n")[0])
    p.add_argument("--config", default=DEFAULT_CONFIG, help="pipeline config YAML")
    p.add_argument("--run-id", help="run to register (default: the latest candidate run)")
    p.add_argument("--alias", default=CHAMPION, choices=(CHAMPION, CHALLENGER))
    action = p.add_mutually_exclusive_group()
    action.add_argument("--gate", action="store_true", help="challenger vs champion, then decide")
    action.add_argument("--rollback", action="store_true", help="move @champion back one version")
    p.add_argument("--window", type=int, nargs="+", help="gate window: labelled months of 2013")
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    connect(paths)
    experiment_id(cfg.train.experiment, paths)
    client = MlflowClient()
    if args.rollback:
        rollback(client, cfg, paths)
        return 0
    if args.gate:
        if not args.window:
            raise PipelineError("--gate needs --window MONTH [MONTH ...]")
        label = "2013-" + "-".join(f"{m:02d}" for m in args.window)
        gate(client, cfg, paths, window_frame(paths, args.window), label)
        return 0
    run_id = args.run_id or latest_candidate(client, cfg.train.experiment)
    version, _ = create_version(client, run_id, cfg.registry.model_name)
    move_alias(client, paths, cfg.registry.model_name, args.alias, version.version, "register")
    if args.alias == CHAMPION:
        publish_champion(client, cfg, paths)
    return 0


def main(argv=None) -> int:
    return run_stage("register", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
