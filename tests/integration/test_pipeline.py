"""The smoke pipeline end to end on real data, with a real MLflow store and registry."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.types import DataType

from src import preprocess, train
from src.common.io import read_json, sha256_file
from src.common.paths import MODEL_DATA, SMOKE_CONFIG
from src.common.schema import REQUEST, REQUEST_FIELDS
from tests.integration.support import ARGS, CFG, assert_is_head, runs_of

pytestmark = pytest.mark.slow
KINDS = {"int": DataType.long, "float": DataType.double, "str": DataType.string}


def test_run_logs_params_metrics_plots_model_and_lineage(smoke_pipeline, mlflow_client, tmp_path):
    run = runs_of(mlflow_client, "candidate")[0]
    assert run.data.params["model"] == "lightgbm"
    assert run.data.params["n_estimators"] == str(CFG.train.lightgbm.n_estimators)
    for split in ("validation", "test"):
        for metric in ("roc_auc", "pr_auc", "log_loss", "brier"):
            assert 0 < run.data.metrics[f"{split}_{metric}"] < 1
    assert "test_roc_auc_month_03" in run.data.metrics
    tags = run.data.tags
    manifest = smoke_pipeline.processed_manifest
    assert tags["data_manifest_sha256"] == sha256_file(manifest)
    assert tags["raw_snapshot_sha256"] == read_json(manifest)["raw_snapshot_sha256"]
    assert tags["config_hash"] == CFG.hash and tags["config_name"] == CFG.name
    assert_is_head(tags["git_commit"])
    plots = {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/roc.png", "plots/calibration.png", "plots/feature_importance.png"}
    info = mlflow.models.get_model_info(tags["model_uri"])
    inputs = info.signature.inputs.inputs
    assert [c.name for c in inputs] == list(REQUEST_FIELDS)
    # The signature is the public data's own types (distance is int64 miles), and exactly the
    # nullable fields may be left out.
    assert [(c.type, c.required) for c in inputs] == [
        (KINDS[c.kind], not c.nullable) for c in REQUEST
    ]
    types = {c.name: c.type for c in inputs}
    assert (types["distance"], types["temp"]) == (DataType.long, DataType.double)
    assert info.saved_input_example_info is not None
    # The logged model is the model object's own file, loaded by its own module.
    assert info.flavors["python_function"]["loader_module"] == "src.model.model"
    local = mlflow.artifacts.download_artifacts(artifact_uri=tags["model_uri"], dst_path=tmp_path)
    assert (Path(local) / MODEL_DATA).is_file()


def test_register_sets_alias_and_exports_champion(smoke_pipeline, mlflow_client):
    version = mlflow_client.get_model_version_by_alias(CFG.registry.model_name, "champion")
    run = runs_of(mlflow_client, "candidate")[0]
    assert version.run_id == run.info.run_id
    meta = read_json(smoke_pipeline.champion_metadata)
    assert meta["name"] == CFG.registry.model_name
    assert str(meta["version"]) == str(version.version)
    assert meta["run_id"] == run.info.run_id
    assert meta["data_manifest_sha256"] == run.data.tags["data_manifest_sha256"]
    assert meta["git_commit"] == run.data.tags["git_commit"]
    assert_is_head(meta["git_commit"])
    assert meta["metrics"]["test_roc_auc"] == run.data.metrics["test_roc_auc"]
    assert version.tags["git_commit"] == run.data.tags["git_commit"]  # copied onto the version
    assert (smoke_pipeline.champion / "MLmodel").is_file()
    assert smoke_pipeline.champion_model.is_file()  # models/champion/data/model.pkl
    assert not list(smoke_pipeline.champion.rglob("servable.pkl"))  # that format is gone
    assert read_json(smoke_pipeline.champion_config) == CFG.model_dump(mode="json")
    card = smoke_pipeline.model_card(CFG.registry.model_name)
    assert f"`{CFG.registry.model_name}` version {version.version} " in card.read_text()


def test_rerun_gives_identical_outputs_and_metrics(smoke_pipeline, mlflow_client):
    before = {p.name: sha256_file(p) for p in smoke_pipeline.processed.glob("*.parquet")}
    assert preprocess.main(ARGS) == 0
    after = {p.name: sha256_file(p) for p in smoke_pipeline.processed.glob("*.parquet")}
    assert before == after and len(before) == 5

    assert train.main(ARGS) == 0
    first, second = runs_of(mlflow_client, "candidate")[1], runs_of(mlflow_client, "candidate")[0]
    assert first.data.metrics == second.data.metrics


def test_full_run_quality_gate_fails_loudly(smoke_pipeline, tmp_path, caplog):
    """With enforcement on, a one-month model misses the thresholds: exit 1, named metrics."""
    raw = yaml.safe_load(SMOKE_CONFIG.read_text())
    raw["train"]["quality_gate"]["enforce"] = True
    strict = tmp_path / "strict.yml"
    strict.write_text(yaml.safe_dump(raw))
    assert train.main(["--config", str(strict)]) == 1
    assert "QualityGateError" in caplog.text and "test_roc_auc=" in caplog.text
