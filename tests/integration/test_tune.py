"""`python -m src.train --tune 3` on the smoke slice: the search in MLflow (a parent run with
one nested run per trial, each with its fold figures) and the config file it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from src import train
from src.common.config import load_config
from tests.integration.support import ARGS, CFG, runs_of

pytestmark = pytest.mark.slow
TRIALS = 3


@pytest.fixture(scope="module")
def tuned(smoke_pipeline, mlflow_client, tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "tuned.yml"
    assert train.main([*ARGS, "--tune", str(TRIALS), "--tune-out", str(out)]) == 0
    return out, runs_of(mlflow_client, "tuning")[0]


def test_parent_run_holds_one_nested_run_per_trial(tuned, mlflow_client):
    _, parent = tuned
    trials = runs_of(mlflow_client, "tuning-trial")
    children = [t for t in trials if t.data.tags["mlflow.parentRunId"] == parent.info.run_id]
    assert sorted(int(t.data.params["trial"]) for t in children) == list(range(TRIALS))
    fold = f"fold_{CFG.split.cv_months[0]:02d}"  # the smoke config has one fold: February
    for child in children:
        m = child.data.metrics
        assert 0 < m[f"{fold}_log_loss"] < 1 and 0.5 < m[f"{fold}_roc_auc"] < 1
        assert m[f"{fold}_trees"] >= 1
        assert m["mean_fold_log_loss"] == pytest.approx(m[f"{fold}_log_loss"])
    # The parent's best is the best child's figure and parameters.
    best = min(children, key=lambda t: t.data.metrics["mean_fold_log_loss"])
    assert parent.data.metrics["best_mean_fold_log_loss"] == pytest.approx(
        best.data.metrics["mean_fold_log_loss"]
    )
    for name in ("learning_rate", "num_leaves", "min_child_samples", "reg_alpha"):
        assert parent.data.params[f"best_{name}"] == best.data.params[name]
    assert parent.data.params["best_n_estimators"] == str(int(best.data.metrics[f"{fold}_trees"]))


def test_parent_run_compares_with_the_current_config(tuned, mlflow_client):
    _, parent = tuned
    m = parent.data.metrics
    assert m["log_loss_change_low"] <= m["log_loss_change"] <= m["log_loss_change_high"]
    assert m["roc_auc_gain_low"] <= m["roc_auc_gain"] <= m["roc_auc_gain_high"]
    change = m["best_mean_fold_log_loss"] - m["current_mean_fold_log_loss"]
    assert m["log_loss_change"] == pytest.approx(change)  # one fold: pooled = mean
    assert m["wins"] in (0.0, 1.0)
    files = {a.path for a in mlflow_client.list_artifacts(parent.info.run_id, "plots")}
    assert files == {"plots/optuna_history.png", "plots/optuna_importance.png"}


def test_written_config_is_the_best_recipe_and_repeatable(tuned, mlflow_client, tmp_path):
    out, parent = tuned
    cfg = load_config(out)
    assert cfg.name == f"{CFG.name}-tuned"
    params = cfg.train.lightgbm.model_dump()
    assert {f"best_{k}": str(v) for k, v in params.items()} == {
        k: v for k, v in parent.data.params.items() if k.startswith("best_")
    }
    # Everything but LightGBM's parameters is the config it was tuned from.
    assert cfg.model_dump(exclude={"name", "train"}) == CFG.model_dump(exclude={"name", "train"})
    verdict = out.read_text().splitlines()[4]
    wins = parent.data.metrics["wins"] == 1.0
    assert verdict.startswith("# Verdict: WINS" if wins else "# Verdict: does not win")
    logged = mlflow_client.download_artifacts(parent.info.run_id, "tuned_config.yml", tmp_path)
    assert Path(logged).read_text() == out.read_text()
    # A fixed seed and TPE: the same search writes the same file.
    again = tmp_path / "again.yml"
    assert train.main([*ARGS, "--tune", str(TRIALS), "--tune-out", str(again)]) == 0
    assert again.read_text() == out.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tune", "0"], "--tune: need at least 1 trial"),
        (["--tune", "1", "--early-stopping"], "not allowed with argument"),
        (["--tune", "1", "--tune-out", "/nonexistent/tuned.yml"], "is not a writable folder"),
    ],
)
def test_bad_tune_arguments_are_refused_before_any_work(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        train.main([*ARGS, *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
