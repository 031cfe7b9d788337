"""Reproduce logged smoke runs from their lineage: same metrics, or a loud failure."""

from __future__ import annotations

import io
import logging
import re

import pandas as pd
import pytest
from mlflow import MlflowClient

from src import reproduce
from src.common.config import load_config
from src.common.errors import PipelineError
from src.common.io import read_json, sha256_file, write_json
from src.common.paths import SMOKE_CONFIG, SPLITS
from src.data.processed import load_months

pytestmark = pytest.mark.slow
CFG = load_config(SMOKE_CONFIG)


def latest_run(mlflow_client: MlflowClient, role: str):
    exp = mlflow_client.get_experiment_by_name(CFG.train.experiment)
    runs = mlflow_client.search_runs(
        [exp.experiment_id],
        f"tags.role = '{role}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    assert runs, f"no {role} run in {CFG.train.experiment}"
    return runs[0]


@pytest.mark.parametrize(("role", "kind"), [("candidate", "lightgbm"), ("baseline", "logistic")])
def test_logged_run_is_reproduced_exactly(smoke_pipeline, mlflow_client, caplog, role, kind):
    caplog.set_level(logging.INFO)
    run = latest_run(mlflow_client, role)
    assert run.data.params["model"] == kind
    assert reproduce.main(["--run-id", run.info.run_id]) == 0
    assert f"refitting {kind} on " in caplog.text
    worst = re.search(r"max \|difference\| (\S+) <= tolerance 1e-09", caplog.text)
    assert worst and float(worst.group(1)) <= 1e-9


def test_changed_processed_data_fails_loudly(smoke_pipeline, mlflow_client, caplog):
    caplog.set_level(logging.INFO)
    run = latest_run(mlflow_client, "candidate")
    manifest = smoke_pipeline.processed_manifest
    original = manifest.read_bytes()
    try:
        write_json(manifest, {**read_json(manifest), "note": "edited after training"})
        changed = sha256_file(manifest)
        assert reproduce.main(["--run-id", run.info.run_id]) == 1
    finally:
        manifest.write_bytes(original)
    assert sha256_file(manifest) == run.data.tags["data_manifest_sha256"]
    assert "DataContractError" in caplog.text
    assert f"sha256 {changed} differs from run {run.info.run_id}'s" in caplog.text
    assert f"data_manifest_sha256 {run.data.tags['data_manifest_sha256']}" in caplog.text
    assert f"raw_snapshot_sha256 {run.data.tags['raw_snapshot_sha256']}" in caplog.text
    assert "refitting" not in caplog.text  # failed before any work


def test_unknown_run_id_fails_loudly(smoke_pipeline, caplog):
    assert reproduce.main(["--run-id", "0123456789abcdef0123456789abcdef"]) == 1
    assert "ModelNotFoundError: run '0123456789abcdef0123456789abcdef': not found" in caplog.text


def test_other_code_only_warns(caplog):
    caplog.set_level(logging.INFO)
    reproduce.check_code({"git_commit": "abc123"}, "abc123")
    assert "code differs" not in caplog.text
    reproduce.check_code({"git_commit": "abc123"}, "def456-dirty")
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "run git_commit abc123, working tree def456-dirty" in caplog.text


def test_load_months_restores_preprocess_order_byte_for_byte(smoke_pipeline):
    """A split's months, read back from whichever files hold them, are that file's exact
    bytes; the rows a refit sees are the rows training saw, in the same order."""

    def parquet(frame: pd.DataFrame) -> bytes:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, engine="pyarrow", index=False)
        return buffer.getvalue()

    files = {n: pd.read_parquet(smoke_pipeline.processed_file(n)) for n in SPLITS}
    splits = reproduce.run_splits(smoke_pipeline, CFG)
    for name in SPLITS:
        months = getattr(CFG.split, f"{name}_months")
        assert parquet(load_months(smoke_pipeline, months)) == parquet(files[name]), name
        assert parquet(splits[name]) == parquet(files[name]), name
    assert splits["planes"].equals(pd.read_parquet(smoke_pipeline.processed_file("planes")))
    both = load_months(smoke_pipeline, [2, 1])  # any order of months in
    assert len(both) == len(files["train"]) + len(files["validation"])
    assert both["month"].is_monotonic_increasing
    assert parquet(both) == parquet(load_months(smoke_pipeline, [1, 2]))


def test_edited_logged_config_is_refused(smoke_pipeline, mlflow_client):
    run = latest_run(mlflow_client, "candidate")
    logged = reproduce.load_logged_config(run.info.run_id)
    # As JSON, as it was logged: a dict's number keys (a lead's floor, 24.0) are text there.
    checked = reproduce.check_config(logged, run.data.tags, run.info.run_id)
    assert checked.model_dump(mode="json") == logged
    assert checked.train.quality_gate.min_lead_roc_auc == CFG.train.quality_gate.min_lead_roc_auc
    edited = {**logged, "seed": logged["seed"] + 1}
    with pytest.raises(PipelineError, match="not the one the run was trained with"):
        reproduce.check_config(edited, run.data.tags, run.info.run_id)


def test_metric_beyond_tolerance_is_named(smoke_pipeline, mlflow_client):
    logged = latest_run(mlflow_client, "candidate").data.metrics
    nudged = {**logged, "test_brier": logged["test_brier"] + 1e-6}
    assert reproduce.check_metrics(logged, dict(logged), 1e-9, "r1") == 0.0
    assert reproduce.check_metrics(logged, nudged, 1e-5, "r1") == pytest.approx(1e-6)
    with pytest.raises(PipelineError, match=r"r1: 1 of \d+ metrics differ by more than 1e-09"):
        reproduce.check_metrics(logged, nudged, 1e-9, "r1")
