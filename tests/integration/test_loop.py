"""The monitoring loop replayed on the smoke slice (train January, replay February-March):
real API, real registry, real Evidently; two runs make identical decisions."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from src import simulate
from src.common.config import load_config
from src.common.tracking import connect
from tests.conftest import SMOKE_CONFIG

pytestmark = pytest.mark.slow


def replay(paths) -> dict:
    assert simulate.main(["--config", str(SMOKE_CONFIG), "--months", "2", "3"]) == 0
    return json.loads((paths.reports / "loop" / "decisions.json").read_text())


def test_loop_is_repeatable_and_reports(smoke_pipeline):
    first = replay(smoke_pipeline)
    second = replay(smoke_pipeline)
    assert first == second

    months = first["months"]
    assert [m["month"] for m in months] == [2, 3]
    assert all(m["rows"] > 20000 and 0.5 < m["loop_auc"] < 0.9 for m in months)
    # February is served by the initial champion, which is also the frozen model.
    assert months[0]["serving_version"] == "1"
    assert months[0]["loop_auc"] == pytest.approx(months[0]["frozen_auc"], abs=1e-12)
    if months[0].get("challenger_version"):  # an alert in February puts a challenger to the gate
        assert months[1]["gate"]["window"] == "2013-03"
    report = (smoke_pipeline.reports / "loop" / "report.md").read_text()
    assert "| 02 | v1 |" in report
    assert (smoke_pipeline.reports / "loop" / "auc.png").stat().st_size > 5000


def test_loop_leaves_the_real_registry_alone(smoke_pipeline):
    name = load_config(SMOKE_CONFIG).registry.model_name
    before = champion_of(smoke_pipeline, name)
    replay(smoke_pipeline)
    assert champion_of(smoke_pipeline, name) == before
    assert len(list((smoke_pipeline.reports / "loop" / "mlruns").glob("*/mlflow.db"))) == 1


def champion_of(paths, name: str) -> str:
    connect(paths)
    return str(MlflowClient().get_model_version_by_alias(name, "champion").version)
