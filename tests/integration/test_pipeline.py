"""The smoke pipeline end to end on real data, with a real MLflow store and registry."""

from __future__ import annotations

import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from src import preprocess, train
from src.common.config import load_config
from src.common.io import read_json, sha256_file
from src.common.schema import REQUEST_FIELDS
from tests.conftest import SMOKE_CONFIG

pytestmark = pytest.mark.slow
CFG = load_config(SMOKE_CONFIG)


def candidate_runs(mlflow_client: MlflowClient):
    exp = mlflow_client.get_experiment_by_name(CFG.train.experiment)
    return mlflow_client.search_runs(
        [exp.experiment_id], "tags.role = 'candidate'", order_by=["attributes.start_time DESC"]
    )


def test_run_logs_params_metrics_plots_model_and_lineage(smoke_pipeline, mlflow_client):
    run = candidate_runs(mlflow_client)[0]
    assert run.data.params["model"] == "lightgbm"
    assert run.data.params["n_estimators"] == str(CFG.train.lightgbm.n_estimators)
    for split in ("validation", "test"):
        for metric in ("roc_auc", "pr_auc", "log_loss", "brier"):
            assert 0 < run.data.metrics[f"{split}_{metric}"] < 1
    assert "test_roc_auc_month_03" in run.data.metrics
    tags = run.data.tags
    manifest = smoke_pipeline.processed / "manifest.json"
    assert tags["data_manifest_sha256"] == sha256_file(manifest)
    assert tags["raw_snapshot_sha256"] == read_json(manifest)["raw_snapshot_sha256"]
    assert tags["config_hash"] == CFG.hash
    assert len(tags["git_commit"]) >= 7
    plots = {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/roc.png", "plots/calibration.png", "plots/feature_importance.png"}
    info = mlflow.models.get_model_info(tags["model_uri"])
    assert [c.name for c in info.signature.inputs.inputs] == list(REQUEST_FIELDS)
    assert info.saved_input_example_info is not None


def test_register_sets_alias_and_exports_champion(smoke_pipeline, mlflow_client):
    version = mlflow_client.get_model_version_by_alias(CFG.registry.model_name, "champion")
    run = candidate_runs(mlflow_client)[0]
    assert version.run_id == run.info.run_id
    meta = read_json(smoke_pipeline.champion / "metadata.json")
    assert meta["name"] == CFG.registry.model_name
    assert str(meta["version"]) == str(version.version)
    assert meta["run_id"] == run.info.run_id
    assert meta["data_manifest_sha256"] == run.data.tags["data_manifest_sha256"]
    assert meta["git_commit"] == run.data.tags["git_commit"]
    assert meta["metrics"]["test_roc_auc"] == run.data.metrics["test_roc_auc"]
    assert (smoke_pipeline.champion / "MLmodel").is_file()
    card = smoke_pipeline.reports / "model_card" / f"{CFG.registry.model_name}.md"
    assert f"`{CFG.registry.model_name}` version {version.version} " in card.read_text()


def test_rerun_gives_identical_outputs_and_metrics(smoke_pipeline, mlflow_client):
    before = {p.name: sha256_file(p) for p in smoke_pipeline.processed.glob("*.parquet")}
    assert preprocess.main(["--config", str(SMOKE_CONFIG)]) == 0
    after = {p.name: sha256_file(p) for p in smoke_pipeline.processed.glob("*.parquet")}
    assert before == after and len(before) == 5

    assert train.main(["--config", str(SMOKE_CONFIG)]) == 0
    first, second = candidate_runs(mlflow_client)[1], candidate_runs(mlflow_client)[0]
    assert first.data.metrics == second.data.metrics


def test_full_run_quality_gate_fails_loudly(smoke_pipeline, tmp_path, caplog):
    """With enforcement on, a one-month model misses the thresholds: exit 1, named metrics."""
    raw = yaml.safe_load(SMOKE_CONFIG.read_text())
    raw["train"]["quality_gate"]["enforce"] = True
    strict = tmp_path / "strict.yml"
    strict.write_text(yaml.safe_dump(raw))
    assert train.main(["--config", str(strict)]) == 1
    assert "QualityGateError" in caplog.text and "test_roc_auc=" in caplog.text
