"""Champion vs challenger on a labelled window, then promote, reject or roll back. The
decision and its evidence go on the challenger's version (gate.* tags) and into the alias
history; the statistics are src/model/gate.py's."""

from __future__ import annotations

import logging

import pandas as pd
from mlflow import MlflowClient

from src.common.config import Config
from src.common.errors import ModelNotFoundError
from src.common.paths import Paths
from src.common.schema import TARGET
from src.model.evaluate import binary_metrics
from src.model.features import request_columns
from src.model.gate import GateResult, gate_decision
from src.registry.export import publish_champion
from src.registry.history import append_event, read_history, rollback_target
from src.registry.versions import CHALLENGER, CHAMPION, alias_version, move_alias
from src.tracking.runs import load_logged_model

log = logging.getLogger(__name__)


def gate(client: MlflowClient, cfg: Config, paths: Paths, window: pd.DataFrame, label: str):
    """Challenger vs champion on a labelled window it did not train on: promote or reject.
    @challenger is removed either way; returns the GateResult."""
    name = cfg.registry.model_name
    champ, chall = alias_version(client, name, CHAMPION), alias_version(client, name, CHALLENGER)
    if champ is None or chall is None:
        raise ModelNotFoundError(f"{name}: the gate needs both @{CHAMPION} and @{CHALLENGER}")
    cols, y = request_columns(window), window[TARGET].to_numpy()
    champion, challenger = (  # scored by the registered models themselves
        load_logged_model(f"models:/{name}@{alias}").predict_proba(cols)
        for alias in (CHAMPION, CHALLENGER)
    )
    result = gate_decision(y, champion, challenger, cfg)
    run_id = client.get_model_version(name, chall).run_id
    if run_id is None:  # src.registry.versions creates every version from a run
        raise ModelNotFoundError(f"{name} v{chall}: no run to read its training months from")
    trained_months = client.get_run(run_id).data.params.get("split_train_months")
    evidence = {"window": label, "challenger_train_months": trained_months}
    settle(client, cfg, paths, result, evidence, binary_metrics(y, challenger))
    return result


def settle(client, cfg: Config, paths: Paths, result: GateResult, evidence: dict, window: dict):
    """Act on the gate's result: the evidence as tags on @challenger's version, its `window`
    metrics on its run, then promote it or record the rejection; @challenger is removed."""
    name = cfg.registry.model_name
    champ, chall = alias_version(client, name, CHAMPION), alias_version(client, name, CHALLENGER)
    if chall is None:
        raise ModelNotFoundError(f"{name}: no @{CHALLENGER} to settle")
    evidence = {**evidence, "champion_version": champ, **result.as_dict()}
    run_id = client.get_model_version(name, chall).run_id
    for key, value in evidence.items():
        client.set_model_version_tag(name, chall, f"gate.{key}", str(value))
    for key, value in window.items():  # out-of-sample: the monitor's baseline if promoted
        client.log_metric(run_id, f"gate_window_{key}", value)
    log.info("gate on %s (challenger v%s): %s", evidence.get("window"), chall, result.reason)
    if result.promote:
        move_alias(client, paths, name, CHAMPION, chall, "promote", evidence=evidence)
        publish_champion(client, cfg, paths)
    else:
        rejected = {"model": name, "alias": CHALLENGER, "version": chall, "previous_version": champ}
        append_event(paths.alias_history(name), **rejected, event="reject", evidence=evidence)
    client.delete_registered_model_alias(name, CHALLENGER)


def rollback(client: MlflowClient, cfg: Config, paths: Paths) -> str:
    """@champion back to the champion before it (alias history); re-exported."""
    name = cfg.registry.model_name
    current = alias_version(client, name, CHAMPION)
    if current is None:
        raise ModelNotFoundError(
            f"{name}@{CHAMPION} is not set: nothing to roll back; "
            "register a champion first (`python -m src.register`)"
        )
    target = rollback_target(read_history(paths.alias_history(name)), current)
    if target is None:
        raise ModelNotFoundError(
            f"{name}: no earlier champion than version {current} to roll back to"
        )
    move_alias(client, paths, name, CHAMPION, target, "rollback")
    publish_champion(client, cfg, paths)
    return target
