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


def score_aliases(name: str, window: pd.DataFrame) -> dict:
    """Each alias's probabilities on the window, from the registered models themselves."""
    cols = request_columns(window)
    return {
        alias: load_logged_model(f"models:/{name}@{alias}").predict_proba(cols)
        for alias in (CHAMPION, CHALLENGER)
    }


def compare(y, scores: dict, cfg: Config) -> GateResult:
    """The gate's decision on each alias's scores, with the config's settings."""
    return gate_decision(y, scores[CHAMPION], scores[CHALLENGER], cfg)


def gate(client: MlflowClient, cfg: Config, paths: Paths, window: pd.DataFrame, label: str):
    """Challenger vs champion on a labelled window it did not train on: promote or reject.
    @challenger is removed either way; returns the GateResult."""
    name = cfg.registry.model_name
    champ, chall = alias_version(client, name, CHAMPION), alias_version(client, name, CHALLENGER)
    if champ is None or chall is None:
        raise ModelNotFoundError(f"{name}: the gate needs both @{CHAMPION} and @{CHALLENGER}")
    scores, y = score_aliases(name, window), window[TARGET].to_numpy()
    result = compare(y, scores, cfg)
    run_id = client.get_model_version(name, chall).run_id
    if run_id is None:  # src.registry.versions creates every version from a run
        raise ModelNotFoundError(f"{name} v{chall}: no run to read its training months from")
    trained_months = client.get_run(run_id).data.params.get("split_train_months")
    evidence = {"window": label, "challenger_train_months": trained_months}
    settle(client, cfg, paths, result, evidence, binary_metrics(y, scores[CHALLENGER]))
    return result


def settle(client, cfg: Config, paths: Paths, result: GateResult, evidence: dict, window: dict):
    """Act on the gate's result for @challenger: record the evidence on its version, then
    move @champion to it or record the rejection; @challenger is removed either way.
    `window` holds the challenger's metrics on the gate window (logged on its run)."""
    name = cfg.registry.model_name
    champ, chall = alias_version(client, name, CHAMPION), alias_version(client, name, CHALLENGER)
    if chall is None:
        raise ModelNotFoundError(f"{name}: no @{CHALLENGER} to settle")
    evidence = {**evidence, "champion_version": champ, **result.as_dict()}
    run_id = client.get_model_version(name, chall).run_id
    record_evidence(client, name, chall, run_id, evidence, window)
    log.info("gate on %s (challenger v%s): %s", evidence.get("window"), chall, result.reason)
    if result.promote:
        move_alias(client, paths, name, CHAMPION, chall, "promote", evidence=evidence)
        publish_champion(client, cfg, paths)
    else:
        history = paths.alias_history(name)
        append_event(
            history,
            model=name,
            alias=CHALLENGER,
            version=chall,
            previous_version=champ,
            event="reject",
            evidence=evidence,
        )
    client.delete_registered_model_alias(name, CHALLENGER)


def record_evidence(client, name: str, version: str, run_id: str, evidence: dict, window: dict):
    """The gate's evidence as tags on the version; the challenger's window metrics on its
    run (out-of-sample figures: the monitor's baseline if it becomes champion)."""
    for key, value in evidence.items():
        client.set_model_version_tag(name, version, f"gate.{key}", str(value))
    for key, value in window.items():
        client.log_metric(run_id, f"gate_window_{key}", value)


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
