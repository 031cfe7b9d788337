"""The challenger in the shadow, on a copy of the smoke registry: @challenger set to v2 (the
smoke baseline run, a logistic model, so its scores differ from the champion's). Answers do
not change at all; the prediction log holds both models' versions and probabilities, the
challenger's equal to its own logged model's; /metrics shows the scores of both roles; an
unset alias is None from both registry readers and drops the shadow."""

from __future__ import annotations

import json
import shutil
import urllib.request

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from app.main import create_app
from src.common.errors import ModelNotFoundError
from src.common.schema import API_REQUEST_FIELDS, PREDICTION
from src.common.settings import Settings
from src.serving.prediction_log import PredictionLogger, read_log
from src.serving.registry import MlflowRegistry
from src.serving.registry_rest import RestRegistry
from src.serving.service import ModelService
from src.serving.watcher import AliasWatcher
from src.tracking.store import connect
from tests.api.support import CFG, cfg_with, records, wait_until
from tests.conftest import gunicorn, mlflow_server

NAME = CFG.registry.model_name


@pytest.fixture(scope="module")
def store(smoke_pipeline, tmp_path_factory):
    """A copy of the smoke store (tests elsewhere share the original) with v2, the smoke
    baseline run's logistic model: yields (paths on the copy, the version number)."""
    from dataclasses import replace

    folder = tmp_path_factory.mktemp("shadow-store")
    shutil.copytree(smoke_pipeline.mlflow, folder / "mlruns")
    paths = replace(smoke_pipeline, mlflow=folder / "mlruns", data=folder / "data")
    # MLflow looks the logged model of a new version up in the global store, whatever the
    # client's: point it at the copy (an earlier test in this process may have left another).
    connect(paths)
    client = MlflowClient(paths.tracking_uri, paths.tracking_uri)
    experiment = client.get_experiment_by_name(CFG.train.experiment).experiment_id
    baseline = client.search_runs([experiment], "tags.role = 'baseline'")[0]
    model_uri = baseline.data.tags["model_uri"]
    v2 = client.create_model_version(
        NAME, model_uri, baseline.info.run_id, model_id=model_uri.removeprefix("models:/")
    )
    yield paths, str(v2.version)


@pytest.fixture(scope="module")
def flights(test_split) -> list[dict]:
    """Test flights as requests, each with its flight number."""
    head = test_split.head(40)
    return [{**r, "flight": int(n)} for r, n in zip(records(head), head["flight"], strict=True)]


def requests_of(flights: list[dict]) -> list[tuple[str, dict, list[int]]]:
    """(path, body, the flights' positions): 20 one-flight requests, the other 20 flights as
    records, and all 40 as columns."""
    columns = {f: [r[f] for r in flights] for f in API_REQUEST_FIELDS}
    n = len(flights)
    return [
        *(("/predict", flights[i], [i]) for i in range(20)),
        ("/predict/batch", {"flights": flights[20:]}, list(range(20, n))),
        ("/predict/batch", {"columns": columns}, list(range(n))),
    ]


def without_ids(answers: list[dict]) -> list[dict]:
    return [{k: v for k, v in a.items() if k != "request_id"} for a in answers]


def own_scores(paths, version: str, flights: list[dict]) -> np.ndarray:
    """The challenger's own logged model (MLflow's pyfunc, read from its artifact folder)."""
    client = MlflowClient(paths.tracking_uri, paths.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(client.get_model_version_download_uri(NAME, version))
    return pyfunc.predict(pd.DataFrame(flights))[PREDICTION].to_numpy()


@pytest.mark.slow
def test_an_unset_alias_is_none_from_both_registry_readers(store, tmp_path):
    paths, v2 = store
    plain = MlflowRegistry(paths)
    assert plain.resolve_alias(NAME, "no-such-alias") is None
    assert plain.resolve_alias(NAME, "champion") == ("1", plain.resolve_alias(NAME, "champion")[1])
    with mlflow_server(paths.tracking_uri, tmp_path / "artifacts") as (url, _):
        rest = RestRegistry(url, Settings())
        assert rest.resolve_alias(NAME, "no-such-alias") is None
        assert rest.resolve_alias(NAME, "champion") == plain.resolve_alias(NAME, "champion")
        with pytest.raises(ModelNotFoundError, match="no-such-model: HTTP 404"):
            rest.resolve_alias("no-such-model", "champion")  # a missing model still raises


def test_the_watcher_follows_the_challenger_in_process(store, flights, tmp_path):
    """The plain registry reader (MlflowClient), polled by hand: @challenger set, then unset."""
    paths, v2 = store
    client = MlflowClient(paths.tracking_uri, paths.tracking_uri)

    def watched(settings, cfg, _paths):
        svc = ModelService(cfg.serve.threshold, PredictionLogger(tmp_path))
        svc.watcher = AliasWatcher(svc, cfg, paths, MlflowRegistry(paths))
        svc.watcher.start(0)  # no background polls: this test polls itself
        return svc

    with TestClient(create_app(watched, CFG)) as c:
        svc = c.app.state.service
        svc.watcher.poll()
        before = without_ids([c.post(p, json=b).json() for p, b, _ in requests_of(flights)])
        assert svc.shadow is None and c.get("/ready").json()["shadow_version"] is None
        assert c.get("/model").json()["challenger"] is None
        client.set_registered_model_alias(NAME, "challenger", v2)
        try:
            svc.watcher.poll()
            assert c.get("/ready").json()["shadow_version"] == v2
            model = c.get("/model").json()
            assert model["shadow_version"] == v2
            # The challenger's lineage beside the champion's (the dashboard shows both).
            challenger = model["challenger"]
            assert challenger["version"] == v2 and challenger["alias"] == "challenger"
            assert challenger["run_id"] == svc.shadow.run_id != model["run_id"]
            assert challenger["git_commit"] == svc.shadow.metadata["git_commit"]
            assert challenger["metrics"] == svc.shadow.metadata["metrics"]
            assert svc.shadow.alias == "challenger" and svc.shadow.model.kind == "logistic"
            after = without_ids([c.post(p, json=b).json() for p, b, _ in requests_of(flights)])
        finally:
            client.delete_registered_model_alias(NAME, "challenger")
        svc.watcher.poll()
        assert svc.shadow is None and c.get("/ready").json()["registry"]["error"] is None
    assert after == before


def get(url: str) -> dict | str:
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read().decode()
    return json.loads(body) if r.headers.get_content_type() == "application/json" else body


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def every_worker_shows(base: str, shadow: str | None, in_a_row: int = 20) -> bool:
    """`in_a_row` /ready answers in a row (each from either worker) after a registry poll,
    with this shadow version."""
    for _ in range(in_a_row):
        ready = get(f"{base}/ready")
        if not ready["registry"]["reachable"] or ready["shadow_version"] != shadow:
            return False
    return True


def metric(text: str, prefix: str) -> float:
    lines = text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))


@pytest.mark.slow
def test_gunicorn_answers_alike_and_logs_both_models(store, flights, tmp_path):
    """The production server, both workers polling the registry over REST every second."""
    paths, v2 = store
    config = tmp_path / "serve.yml"
    config.write_text(yaml.safe_dump(cfg_with(reload_seconds=1).model_dump()))
    log = tmp_path / "gunicorn.log"
    sent = requests_of(flights)
    with mlflow_server(paths.tracking_uri, tmp_path / "artifacts") as (registry, _):
        client = MlflowClient(registry, registry)
        env = {
            "FD_DATA_DIR": str(tmp_path / "data"),
            "FD_CONFIG": str(config),
            "MLFLOW_TRACKING_URI": registry,
        }
        with gunicorn(env, log=log) as (base, _):
            wait_until(lambda: every_worker_shows(base, None), 60, what="both workers polled")
            before = [post(base + path, body) for path, body, _ in sent]
            client.set_registered_model_alias(NAME, "challenger", v2)
            wait_until(lambda: every_worker_shows(base, v2), 60, what=f"both load v{v2}")
            after = [post(base + path, body) for path, body, _ in sent]
            scored = f'fd_prediction_score_count{{role="challenger",version="{v2}"}}'
            text = wait_until(
                lambda: metric(t := get(f"{base}/metrics"), scored) >= 80 and t,
                30,
                what="the challenger's scores in /metrics",
            )
            client.delete_registered_model_alias(NAME, "challenger")
            wait_until(lambda: every_worker_shows(base, None), 60, what="the shadow dropped")
        # gunicorn stopped gracefully: every line is written

    context = f"gunicorn log tail:\n{log.read_text()[-3000:]}"
    assert without_ids(after) == without_ids(before), context
    assert metric(text, 'fd_prediction_score_count{role="champion",version="1"}') == 160
    assert metric(text, scored) == 80
    labels = f'name="{NAME}",role="challenger",source="registry",version="{v2}"'
    assert f"fd_model_info{{{labels}}} 1.0" in text
    assert metric(text, "fd_registry_reachable ") == 1
    assert metric(text, 'fd_model_baseline_mean_score{version="1"}') > 0

    rows, torn = read_log(tmp_path / "data" / "predictions")
    assert torn == 0 and len(rows) == 160 and (rows["model_version"] == "1").all()
    before_ids = {a["request_id"] for a in before}
    assert rows.loc[rows["request_id"].isin(before_ids), "shadow_version"].isna().all()
    # Each request's rows after @challenger was set: both versions, the flight numbers, and
    # the challenger's own model's probabilities on those very flights, not the champion's.
    own = own_scores(paths, v2, flights)
    for answer, (_, _, positions) in zip(after, sent, strict=True):
        logged = rows[rows["request_id"] == answer["request_id"]]
        assert (logged["shadow_version"] == v2).all(), context
        assert list(logged["flight"]) == [flights[i]["flight"] for i in positions]
        shadow = logged["shadow_probability"].to_numpy(float)
        np.testing.assert_allclose(shadow, own[positions], rtol=0, atol=1e-12)
    champion = [p["delay_probability"] for p in after[-1]["predictions"]]  # all 40 flights
    assert np.abs(own - champion).max() > 0.01
