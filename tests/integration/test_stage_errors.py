"""Stage flags and errors a user meets that the stage's own tests leave out:
`python -m src.train --early-stopping` (prints the tree count, logs no run), and
`python -m src.reproduce` on a run it cannot rebuild (one line, exit 1). The smoke
pipeline's store; no mocks."""

from __future__ import annotations

import logging

import pytest

from src import reproduce, train
from src.common.paths import SMOKE_CONFIG
from tests.integration.support import CFG

pytestmark = pytest.mark.slow


def error_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_train_early_stopping_prints_the_tree_count_and_logs_no_run(
    smoke_pipeline, mlflow_client, capsys
):
    experiment = mlflow_client.get_experiment_by_name(CFG.train.experiment)
    runs_before = len(mlflow_client.search_runs([experiment.experiment_id]))

    assert train.main(["--config", str(SMOKE_CONFIG), "--early-stopping"]) == 0

    out = capsys.readouterr().out.strip()
    patience = CFG.train.tuning.early_stopping_patience
    prefix = f"early stopping on validation (patience {patience}): "
    assert out.startswith(prefix), out
    trees = int(out.removeprefix(prefix).split(" trees;")[0])
    assert 1 <= trees <= CFG.train.tuning.max_trees
    assert out.endswith(f"config: n_estimators {CFG.train.lightgbm.n_estimators}")
    assert len(mlflow_client.search_runs([experiment.experiment_id])) == runs_before


def test_reproduce_a_run_without_its_config_names_the_artifact(mlflow_client, caplog):
    """A run logged by hand (not by src.train) has no config to rebuild it from."""
    experiment_id = mlflow_client.create_experiment("reproduce-errors-test")
    run_id = mlflow_client.create_run(experiment_id).info.run_id
    mlflow_client.log_param(run_id, "model", "lightgbm")
    mlflow_client.log_metric(run_id, "test_roc_auc", 0.7)
    mlflow_client.set_terminated(run_id)

    assert reproduce.main(["--run-id", run_id]) == 1

    (line,) = error_lines(caplog)
    assert line.startswith(f"PipelineError: run {run_id}: cannot read artifact config.json")


def test_reproduce_without_processed_data_says_which_stage_to_run(
    smoke_pipeline, mlflow_client, tmp_path, monkeypatch, caplog
):
    """The run's store is there, the processed data is not (another machine, a clean
    checkout): the manifest is named, and preprocess."""
    (run,) = mlflow_client.search_runs(
        [mlflow_client.get_experiment_by_name(CFG.train.experiment).experiment_id],
        "tags.role = 'candidate' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    monkeypatch.setenv("FD_DATA_DIR", str(tmp_path / "data"))  # no processed data here

    assert reproduce.main(["--run-id", run.info.run_id]) == 1

    (line,) = error_lines(caplog)
    manifest = tmp_path / "data" / "processed" / "manifest.json"
    assert line == (f"PipelineError: {manifest}: not found; run `python -m src.preprocess` first")
