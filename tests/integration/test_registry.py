"""Registry moves on the smoke pipeline's real store: challenger, gate, rollback, history."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from src import register
from src.alias_history import history_path, read_history
from src.common.config import load_config
from src.common.io import read_json
from tests.conftest import SMOKE_CONFIG

pytestmark = pytest.mark.slow
CFG = load_config(SMOKE_CONFIG)
NAME = CFG.registry.model_name
ARGS = ["--config", str(SMOKE_CONFIG)]


def latest_run(mlflow_client: MlflowClient, role: str) -> str:
    exp = mlflow_client.get_experiment_by_name(CFG.train.experiment)
    runs = mlflow_client.search_runs(
        [exp.experiment_id], f"tags.role = '{role}'", order_by=["attributes.start_time DESC"]
    )
    return runs[0].info.run_id


def test_gate_rejects_a_weaker_challenger_and_records_why(smoke_pipeline, mlflow_client):
    champion = register.alias_version(mlflow_client, NAME, "champion")
    baseline = latest_run(mlflow_client, "baseline")  # logistic: lower test AUC than the champion
    assert register.main([*ARGS, "--alias", "challenger", "--run-id", baseline]) == 0
    challenger = register.alias_version(mlflow_client, NAME, "challenger")

    assert register.main([*ARGS, "--gate", "--window", "3"]) == 0

    assert register.alias_version(mlflow_client, NAME, "champion") == champion  # not promoted
    assert register.alias_version(mlflow_client, NAME, "challenger") is None
    tags = mlflow_client.get_model_version(NAME, challenger).tags
    assert tags["gate.promote"] == "False" and tags["gate.window"] == "2013-03"
    assert float(tags["gate.ci_low"]) <= 0 or "log loss" in tags["gate.reason"]
    last = read_history(history_path(smoke_pipeline.models, NAME))[-1]
    assert (last["event"], last["version"]) == ("reject", challenger)
    assert last["evidence"]["rows"] > 20000


def test_rollback_restores_the_previous_champion(smoke_pipeline, mlflow_client):
    first = register.alias_version(mlflow_client, NAME, "champion")
    baseline = latest_run(mlflow_client, "baseline")
    assert register.main([*ARGS, "--run-id", baseline]) == 0  # a new champion
    second = register.alias_version(mlflow_client, NAME, "champion")
    assert second != first
    assert read_json(smoke_pipeline.champion / "metadata.json")["version"] == int(second)

    assert register.main([*ARGS, "--rollback"]) == 0
    assert register.alias_version(mlflow_client, NAME, "champion") == first
    assert read_json(smoke_pipeline.champion / "metadata.json")["version"] == int(first)
    last = read_history(history_path(smoke_pipeline.models, NAME))[-1]
    assert (last["event"], last["version"], last["previous_version"]) == ("rollback", first, second)


def test_gate_without_challenger_fails_clearly(smoke_pipeline, caplog):
    assert register.main([*ARGS, "--gate", "--window", "3"]) == 1
    assert "@challenger" in caplog.text
