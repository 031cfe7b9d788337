"""Registered versions with different feature lists, served in turn while a server answers
(issue 22): each answers exactly as its own MLflow pyfunc, @champion moves forward and rolls
back across the feature change, a champion and a challenger may differ in features, and a
version whose features this code cannot build is refused while the old champion serves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import mlflow
import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from src import register
from src.common.paths import ROOT, Paths
from src.common.schema import FEATURES, PREDICTION, REQUEST_FIELDS
from src.common.servers import free_port, http_json, stop_server, wait_http
from src.data.processed import load_processed
from src.model.fit import fit_model
from src.registry.versions import CHALLENGER, create_version, move_alias
from src.tracking.runs import log_run
from src.tracking.store import connect, experiment_id, lineage_tags
from tests.integration.support import CFG, records

pytestmark = pytest.mark.slow
NAME = "flight-delay-features"
FEW = ["hour", "origin", "carrier", "temp", "visib", "day_of_week"]


def config(features: list[str]):
    train = CFG.train.model_copy(update={"features": features, "experiment": NAME})
    serve = CFG.serve.model_copy(update={"reload_seconds": 0.5})
    registry = CFG.registry.model_copy(update={"model_name": NAME})
    return CFG.model_copy(update={"train": train, "serve": serve, "registry": registry})


@pytest.fixture(scope="module")
def project(smoke_pipeline, tmp_path_factory) -> Paths:
    """The smoke pipeline's data (read only), with a tracking store, models/ and reports/
    of this module's own."""
    root = tmp_path_factory.mktemp("features")
    return replace(
        smoke_pipeline, models=root / "models", reports=root / "reports", mlflow=root / "mlruns"
    )


@pytest.fixture
def env(project, monkeypatch) -> dict[str, str]:
    folders = {
        "FD_DATA_DIR": project.data,
        "FD_MODELS_DIR": project.models,
        "FD_REPORTS_DIR": project.reports,
        "FD_MLFLOW_DIR": project.mlflow,
    }
    for var, folder in folders.items():
        monkeypatch.setenv(var, str(folder))
    return {k: str(v) for k, v in folders.items()}


def logged_run(project: Paths, cfg, model=None) -> str:
    """Fit `cfg`'s LightGBM on the smoke train split (or take `model` as it is) and log it;
    returns the run id."""
    splits = {s: load_processed(project, s) for s in ("train", "planes")}
    model = model or fit_model("lightgbm", splits["train"], splits["planes"], cfg)
    connect(project)
    mlflow.set_experiment(experiment_id=experiment_id(cfg.train.experiment, project))
    return log_run(model, {}, {"train": splits["train"]}, lineage_tags(project, cfg), cfg, "x")


def champion_registered(config_file, run_id: str) -> str:
    """`python -m src.register --run-id`: a new version, @champion, exported."""
    assert register.main(["--config", str(config_file), "--run-id", run_id]) == 0
    return str(MlflowClient().get_registered_model(NAME).aliases["champion"])


def served_scores(base: str, flights: list[dict]) -> tuple[str, np.ndarray]:
    status, body = http_json(f"{base}/predict/batch", {"flights": flights}, timeout=60)
    assert status == 200, body
    return body["model_version"], np.array([p[PREDICTION] for p in body["predictions"]])


def serving(base: str, version: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = http_json(f"{base}/ready")
        if status == 200 and body["model_version"] == version:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{base} not serving v{version} within {timeout:.0f} s")


class Steady(threading.Thread):
    """One flight after another until stopped (bounded: 60 s, 20,000 requests)."""

    def __init__(self, base: str, flight: dict):
        super().__init__(daemon=True)
        self.base, self.flight, self.statuses = base, flight, []
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 60
        while not self.stop.is_set() and time.monotonic() < deadline and len(self.statuses) < 2e4:
            self.statuses.append(http_json(f"{self.base}/predict", self.flight)[0])


def test_versions_with_different_features_serve_in_turn_and_roll_back(project, env, tmp_path):
    config_file = tmp_path / "serve.yml"
    config_file.write_text(yaml.safe_dump(config(FEW).model_dump(mode="json")))
    runs = {
        "few": logged_run(project, config(FEW)),
        "full": logged_run(project, config(list(FEATURES))),
    }
    test = load_processed(project, "test").head(300)
    flights = records(test)
    own = {  # each run's own MLflow pyfunc on the test flights
        key: mlflow.pyfunc.load_model(model_uri(run)).predict(test[list(REQUEST_FIELDS)])
        for key, run in runs.items()
    }
    own = {key: frame[PREDICTION].to_numpy() for key, frame in own.items()}
    assert not np.allclose(own["few"], own["full"])  # two different models
    v1 = champion_registered(config_file, runs["few"])

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, **env, "FD_CONFIG": str(config_file)},
        start_new_session=True,
    )
    load = Steady(base, flights[0])
    try:
        wait_http(f"{base}/ready", server)
        load.start()
        assert_serves(base, v1, flights, own["few"])
        v2 = champion_registered(config_file, runs["full"])  # 22 features
        assert_serves(base, v2, flights, own["full"])
        assert register.main(["--config", str(config_file), "--rollback"]) == 0
        assert_serves(base, v1, flights, own["few"])  # back across the feature change

        # A champion and a challenger with different features: the challenger is scored in
        # the shadow of every request, the champion answers.
        client = MlflowClient()
        move_alias(client, project, NAME, CHALLENGER, v2, "register")
        ready = wait_for(lambda: (r := http_json(f"{base}/ready")[1])["shadow_version"] == v2 and r)
        assert ready["model_version"] == v1

        # A version naming a feature this code cannot build: refused at load, in one line
        # naming it, while v1 goes on serving.
        future = logged_run(project, config(FEW), unbuildable(project, config(FEW)))
        v3 = create_version(client, future, NAME).version
        move_alias(client, project, NAME, "champion", v3, "register")
        wait_for(lambda: refused(http_json(f"{base}/ready")[1], "origin_delay_2h"))
        assert_serves(base, v1, flights, own["few"])
    finally:
        load.stop.set()
        load.join(timeout=70)
        stop_server(server, signal.SIGTERM)
    assert len(load.statuses) > 10 and set(load.statuses) == {200}


def model_uri(run_id: str) -> str:
    return MlflowClient().get_run(run_id).data.tags["model_uri"]


def assert_serves(base: str, version: str, flights: list[dict], expected: np.ndarray) -> None:
    """The server answers from `version`, with exactly `expected` (its own pyfunc's)."""
    serving(base, version)
    served, scores = served_scores(base, flights)
    assert served == version
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-9)


def unbuildable(project: Paths, cfg):
    """A model whose file names a feature this code does not build (as a newer version of the
    code would write it)."""
    splits = {s: load_processed(project, s) for s in ("train", "planes")}
    model = fit_model("lightgbm", splits["train"].head(2000), splits["planes"], cfg)
    return replace(model, state=replace(model.state, features=(*FEW[:-1], "origin_delay_2h")))


def refused(ready: dict, feature: str) -> dict | None:
    """/ready's answer once the registry status reports the load refused over `feature`."""
    error = ready["registry"]["error"] or ""
    return ready if f"'{feature}'" in error and "\n" not in error else None


def wait_for(condition, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout:.0f} s")
