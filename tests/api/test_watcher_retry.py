"""Hot reload when the new version will not load (src/serving/watcher.py): the alias moves to
a version whose model file is missing or corrupt; the API keeps answering with the old
champion, says why in /model and the log (and /metrics still shows the old version only),
tries again every poll, and serves the version once it loads. A real registry (the smoke
store, under a fresh model name), no mocks."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pytest
from fastapi.testclient import TestClient

from app import metrics
from app.main import create_app
from src.common.paths import MODEL_DATA
from src.common.schema import EXAMPLE_FLIGHT
from src.serving.prediction_log import PredictionLogger
from src.serving.registry import MlflowRegistry
from src.serving.service import ModelService
from src.serving.watcher import AliasWatcher
from tests.api.support import CFG, cfg_named


def add_version(client, name: str, source: str | None = None) -> str:
    """A new version of `name`: the smoke champion's logged model, or the model in the folder
    `source` (a copy of its own, to break without touching any other version)."""
    smoke = client.get_model_version_by_alias(CFG.registry.model_name, "champion")
    if source is not None:
        return str(client.create_model_version(name, source, smoke.run_id).version)
    model_id = smoke.source.removeprefix("models:/")  # MLflow 3: the logged model behind it
    return str(client.create_model_version(name, smoke.source, smoke.run_id, model_id=model_id).version)  # fmt: skip


def served(client: TestClient, name: str) -> dict[str, float]:
    """fd_model_info of `name`'s champion on /metrics: {version: value}."""
    found = {}
    for line in client.get("/metrics").text.splitlines():
        ours = f'name="{name}"' in line and 'role="champion"' in line
        if line.startswith("fd_model_info{") and ours:
            version = line.split('version="')[1].split('"')[0]
            found[version] = float(line.rsplit(" ", 1)[1])
    return found


def break_missing(path: Path) -> None:
    path.unlink()


def break_corrupt(path: Path) -> None:
    path.write_bytes(b"not a pickled model")


@pytest.mark.parametrize(
    ("break_file", "reason"),
    [(break_missing, "has no model file"), (break_corrupt, "")],
    ids=["missing", "corrupt"],
)
def test_a_version_that_fails_to_load_is_retried_while_the_old_one_serves(
    break_file, reason, smoke_pipeline, mlflow_client, tmp_path, caplog
):
    name = f"flight-delay-retry-{break_file.__name__.removeprefix('break_')}"
    mlflow_client.create_registered_model(name)
    v1 = add_version(mlflow_client, name)
    smoke = mlflow_client.get_model_version(name, v1).source
    copy = mlflow.artifacts.download_artifacts(smoke, dst_path=str(tmp_path / "v2"))
    v2 = add_version(mlflow_client, name, copy)
    model_file = Path(copy) / MODEL_DATA
    good = model_file.read_bytes()
    mlflow_client.set_registered_model_alias(name, "champion", v1)
    cfg = cfg_named(name)

    def watched(settings, cfg, paths):
        svc = ModelService(
            cfg.serve.threshold,
            PredictionLogger(tmp_path / "predictions"),
            on_swap=metrics.show_model,  # as app.main.default_service wires them
            on_registry=metrics.show_registry,
        )
        svc.watcher = AliasWatcher(svc, cfg, smoke_pipeline, MlflowRegistry(smoke_pipeline))
        svc.watcher.start(0)  # the export is another model's: v1 from the registry; no thread
        return svc

    with TestClient(create_app(watched, cfg)) as c:
        watcher = c.app.state.service.watcher
        assert c.get("/model").json()["version"] == v1
        break_file(model_file)
        mlflow_client.set_registered_model_alias(name, "champion", v2)

        for attempt in (1, 2):  # every poll tries again, and fails again
            with caplog.at_level(logging.ERROR, logger="src.serving.watcher"):
                watcher.poll()
            assert c.post("/predict", json=EXAMPLE_FLIGHT).json()["model_version"] == v1
            info = c.get("/model").json()
            assert info["version"] == v1 and info["source"] == "registry"
            registry = info["registry"]
            assert registry["reachable"] is True  # the registry answered; the load failed
            assert registry["error"].startswith(f"load of v{v2} (@champion) failed")
            assert reason in registry["error"]
            assert [r["to"] for r in registry["reloads"]] == [v1]  # no swap
            failures = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert len(failures) == attempt
            assert f"could not load {name} v{v2} (@champion)" in failures[-1].getMessage()
            assert served(c, name) == {v1: 1.0}  # /metrics: still v1, and only v1
            assert "fd_registry_reachable 1.0" in c.get("/metrics").text

        model_file.write_bytes(good)  # the version becomes loadable
        watcher.poll()

        assert c.post("/predict", json=EXAMPLE_FLIGHT).json()["model_version"] == v2
        registry = c.get("/model").json()["registry"]
        assert registry["error"] is None and registry["reachable"] is True
        assert registry["reloads"][-1]["from"] == v1
        assert registry["reloads"][-1]["to"] == v2
        assert served(c, name) == {v1: 0.0, v2: 1.0}  # a dashboard shows one champion


def test_after_a_failed_load_the_alias_moving_on_is_followed(
    smoke_pipeline, mlflow_client, tmp_path
):
    """The broken version is never fixed; the alias moves on to a good one: served."""
    name = "flight-delay-retry-moved-on"
    mlflow_client.create_registered_model(name)
    v1 = add_version(mlflow_client, name)
    empty = tmp_path / "empty-model"  # a version whose folder holds no model at all
    empty.mkdir()
    v2, v3 = add_version(mlflow_client, name, str(empty)), add_version(mlflow_client, name)
    mlflow_client.set_registered_model_alias(name, "champion", v1)
    cfg = cfg_named(name)
    svc = ModelService(cfg.serve.threshold)
    watcher = AliasWatcher(svc, cfg, smoke_pipeline, MlflowRegistry(smoke_pipeline))
    watcher.poll()
    assert svc.champion.version == v1

    mlflow_client.set_registered_model_alias(name, "champion", v2)
    watcher.poll()
    assert svc.champion.version == v1 and "has no model file" in svc.registry.error

    mlflow_client.set_registered_model_alias(name, "champion", v3)
    watcher.poll()
    assert svc.champion.version == v3 and svc.registry.error is None
    assert [r["to"] for r in svc.registry.history] == [v1, v3]
    svc.close()


def test_a_champion_alias_removed_keeps_the_model_and_says_so(smoke_pipeline, mlflow_client):
    """@champion deleted (by hand, or a botched script): keep serving, report it, and follow
    the alias again once it is set."""
    name = "flight-delay-retry-unset"
    mlflow_client.create_registered_model(name)
    v1, v2 = add_version(mlflow_client, name), add_version(mlflow_client, name)
    mlflow_client.set_registered_model_alias(name, "champion", v1)
    cfg = cfg_named(name)
    svc = ModelService(cfg.serve.threshold)
    watcher = AliasWatcher(svc, cfg, smoke_pipeline, MlflowRegistry(smoke_pipeline))
    watcher.poll()

    mlflow_client.delete_registered_model_alias(name, "champion")
    watcher.poll()
    assert svc.champion.version == v1
    assert (svc.registry.reachable, svc.registry.error) == (True, f"{name}@champion is not set")

    mlflow_client.set_registered_model_alias(name, "champion", v2)
    watcher.poll()
    assert svc.champion.version == v2 and svc.registry.error is None
    svc.close()
