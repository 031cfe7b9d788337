"""The monitoring loop replayed on the smoke slice (train January, replay February-March):
real API, real registry, real Evidently; two runs make identical decisions."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from src import simulate
from src.registry.versions import CHAMPION, alias_version
from src.tracking.store import connect
from tests.integration.support import ARGS, CFG

pytestmark = pytest.mark.slow


def replay(paths) -> dict:
    assert simulate.main([*ARGS, "--months", "2", "3"]) == 0
    return json.loads(paths.loop_file("decisions.json").read_text())


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
    else:
        assert "gate" not in months[1]
    report = smoke_pipeline.loop_file("report.md").read_text()
    assert "| 02 | v1 |" in report
    assert smoke_pipeline.loop_file("auc.png").stat().st_size > 5000


def test_loop_leaves_the_real_registry_alone(smoke_pipeline):
    name = CFG.registry.model_name
    before = champion_of(smoke_pipeline, name)
    history = smoke_pipeline.alias_history(name).read_bytes()
    replay(smoke_pipeline)
    assert champion_of(smoke_pipeline, name) == before
    assert smoke_pipeline.alias_history(name).read_bytes() == history
    assert len(list((smoke_pipeline.loop / "mlruns").glob("*/mlflow.db"))) == 1


def champion_of(paths, name: str) -> str:
    connect(paths)
    return alias_version(MlflowClient(), name, CHAMPION)
