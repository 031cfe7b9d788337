"""The smoke pipeline end to end on real data, with a real MLflow store and registry."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow.types import DataType

from src import preprocess, train
from src.common.config import read_raw
from src.common.io import read_json, sha256_file
from src.common.paths import MODEL_DATA, SMOKE_CONFIG
from src.common.schema import REQUEST, REQUEST_FIELDS
from src.data.prepare import at_lead
from src.model.features import request_columns
from src.model.slices import slice_table
from src.tracking.runs import SLICES_ARTIFACT, load_logged_model, load_slices
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
    # The headline figures are at the served lead; test ROC AUC is given at every lead too.
    by_lead = {
        lead: run.data.metrics[f"test_roc_auc_lead_{lead:g}h"] for lead in CFG.split.leads_hours
    }
    assert all(0.5 < auc < 1 for auc in by_lead.values()), by_lead
    assert by_lead[CFG.split.served_lead_hours] == pytest.approx(run.data.metrics["test_roc_auc"])
    tags = run.data.tags
    manifest = smoke_pipeline.processed_manifest
    assert tags["data_manifest_sha256"] == sha256_file(manifest)
    assert tags["raw_snapshot_sha256"] == read_json(manifest)["raw_snapshot_sha256"]
    features = sha256_file(smoke_pipeline.features_manifest)  # the tables the examples came from
    assert read_json(manifest)["features_manifest_sha256"] == features
    assert tags["config_hash"] == CFG.hash and tags["config_name"] == CFG.name
    assert_is_head(tags["git_commit"])
    plots = {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {
        "plots/roc.png",
        "plots/calibration.png",
        "plots/feature_importance.png",
        "plots/contribution_importance.png",
    }
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


def test_run_logs_the_test_slice_table(smoke_pipeline, mlflow_client, test_split):
    """The logged table is the run's own model's scores on the test split at the served lead
    (each flight once), cut by slice: its overall row is the run's test metrics, and the
    model scored again gives it back."""
    served = at_lead(test_split, CFG.split.served_lead_hours)
    run = runs_of(mlflow_client, "candidate")[0]
    assert run.data.params["calibrator"] in {"none", "platt", "isotonic"}
    # The calibrator was chosen on the validation split's rows, every one and no other.
    m, validation = run.data.metrics, pd.read_parquet(
        smoke_pipeline.processed / "validation.parquet"
    )
    assert m["calibration_earlier_rows"] + m["calibration_later_rows"] == len(validation)
    paths = {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "slices")}
    assert paths == {SLICES_ARTIFACT}
    logged = load_slices(mlflow_client, run.info.run_id)
    settings = CFG.train.slices
    assert (logged["min_rows"], logged["bootstrap"]) == (settings.min_rows, settings.bootstrap)
    table, m = pd.DataFrame(logged["slices"]), run.data.metrics
    overall = table.iloc[0]
    for figure in ("roc_auc", "log_loss", "base_rate", "mean_prediction", "rows"):
        assert overall[figure] == pytest.approx(m[f"test_{figure}"]), figure
        assert m[f"test_slice_overall_all_{figure}"] == pytest.approx(overall[figure])
    for dimension, rows in table.groupby("dimension")["rows"].sum().items():
        assert rows == len(served), dimension
    ewr = table[table["slice"] == "EWR"].iloc[0]
    assert m["test_slice_origin_EWR_roc_auc_low"] == pytest.approx(ewr["roc_auc_low"])
    model = load_logged_model(run.data.tags["model_uri"])
    scores = model.predict_proba(request_columns(served))
    again = slice_table(
        served,
        scores,
        model.state.plane_tailnum,
        settings.min_rows,
        settings.bootstrap,
        CFG.seed,
    )
    pd.testing.assert_frame_equal(again, table, check_dtype=False)


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
    card = smoke_pipeline.model_card(CFG.registry.model_name).read_text()
    assert f"`{CFG.registry.model_name}` version {version.version} " in card
    # The card's slice table and weak findings are the run's logged figures.
    m = run.data.metrics
    methods = ("raw", *sorted(CFG.train.calibration))
    later = {k: m[f"calibration_later_log_loss_{k}"] for k in methods}
    evidence = ", ".join(f"{k} {v:.4f}" for k, v in later.items())
    assert f"| Calibration | {run.data.params['calibrator']} (chosen by" in card
    assert f"the later half of the validation window: {evidence}) |" in card
    assert f"| origin | EWR | {int(m['test_slice_origin_EWR_rows']):,} |" in card
    weak = card.split("## Where the model is weak")[1]
    assert f"ROC AUC is {m['test_slice_overall_all_roc_auc']:.4f} (" in weak
    # Beside the card, its tables as JSON (the dashboard draws them): the run's own figures.
    slices = read_json(smoke_pipeline.model_card_data(CFG.registry.model_name, "slices"))
    assert slices == load_slices(mlflow_client, run.info.run_id)
    bins = read_json(smoke_pipeline.model_card_data(CFG.registry.model_name, "reliability"))
    assert bins["ece"] == pytest.approx(m["test_ece"], abs=1e-12)
    assert sum(b["rows"] for b in bins["bins"]) == m["test_rows"]


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
    raw = read_raw(SMOKE_CONFIG)
    raw["train"]["quality_gate"]["enforce"] = True
    strict = tmp_path / "strict.yml"
    strict.write_text(yaml.safe_dump(raw))
    assert train.main(["--config", str(strict)]) == 1
    assert "QualityGateError" in caplog.text and "test_roc_auc=" in caplog.text
