"""Registry versions and aliases (MLflow aliases, never the deprecated stages). Every alias
move is also appended to the alias history (src/registry/history.py)."""

from __future__ import annotations

import logging

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from src.common.errors import ModelNotFoundError
from src.common.paths import Paths
from src.registry.history import append_event
from src.tracking.store import LINEAGE_TAGS

log = logging.getLogger(__name__)
CHAMPION, CHALLENGER = "champion", "challenger"


def latest_candidate(client: MlflowClient, experiment: str) -> str:
    """The run id of the newest finished candidate run of `experiment`."""
    exp = client.get_experiment_by_name(experiment)
    runs: list[Run] = []
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
    return version


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def move_alias(client, paths: Paths, name: str, alias: str, version, event: str, **evidence):
    previous = alias_version(client, name, alias)
    client.set_registered_model_alias(name, alias, str(version))
    moved = {"model": name, "alias": alias, "version": str(version), "previous_version": previous}
    append_event(paths.alias_history(name), **moved, event=event, **evidence)
    log.info("%s: @%s -> version %s (was %s)", event, alias, version, previous)
