"""Production behaviour in-process: metrics, API key, limits, CORS, JSON errors, columnar
batches, hot reload and registry loss. The smoke champion, a real registry, no mocks."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from app.main import create_app, default_service
from src.common.io import read_json, write_json
from src.common.schema import EXAMPLE_FLIGHT
from src.common.servers import free_port
from src.serving.prediction_log import PredictionLogger
from src.serving.registry import MlflowRegistry
from src.serving.service import ModelService
from src.serving.watcher import AliasWatcher
from tests.api.support import CFG, cfg_named, cfg_with, columns_of, records, wait_until


@pytest.fixture(scope="module")
def client(smoke_pipeline):
    with TestClient(create_app(default_service, CFG)) as c:
        yield c


def test_metrics_count_routes_statuses_decisions_and_model_version(client):
    client.post("/predict", json=EXAMPLE_FLIGHT)
    client.post("/predict/batch", json={"flights": [EXAMPLE_FLIGHT] * 3})
    client.post("/predict", json={**EXAMPLE_FLIGHT, "month": 13})
    client.get("/no/such/route")
    text = client.get("/metrics").text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")
    assert 'fd_http_requests_total{route="/predict",status="200"}' in text
    assert 'fd_http_requests_total{route="/predict",status="422"}' in text
    # By route template, never by raw path: unknown paths share one label.
    assert 'fd_http_requests_total{route="unmatched",status="404"}' in text
    assert "/no/such/route" not in text
    assert 'fd_http_request_duration_seconds_bucket{le="0.005",route="/predict/batch"}' in text
    labels = 'name="flight-delay-smoke",role="champion",source="export",version="1"'
    assert f"fd_model_info{{{labels}}} 1.0" in text
    scored = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("fd_predictions_total{")
    )
    assert scored >= 4


def test_columnar_batch_equals_records(client, test_split):
    recs = records(test_split, 50)
    columns = columns_of(recs)
    by_records = client.post("/predict/batch", json={"flights": recs}).json()["predictions"]
    by_columns = client.post("/predict/batch", json={"columns": columns}).json()["predictions"]
    assert by_columns == by_records
    no_gusts = {k: v for k, v in columns.items() if k != "wind_gust"}  # nullable: may be omitted
    assert client.post("/predict/batch", json={"columns": no_gusts}).status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"columns": {"year": [2013, 2013]}}, "month"),
        ({}, "exactly one of"),
        (
            {"flights": [EXAMPLE_FLIGHT], "columns": {k: [v] for k, v in EXAMPLE_FLIGHT.items()}},
            "exactly one of",
        ),
    ],
)
def test_bad_batch_shapes_are_422(client, body, message):
    r = client.post("/predict/batch", json=body)
    assert r.status_code == 422 and message in r.text


def test_columns_of_unequal_length_name_the_field(client):
    cols = {k: [v, v] for k, v in EXAMPLE_FLIGHT.items() if v is not None}
    cols["carrier"] = ["UA"]
    r = client.post("/predict/batch", json={"columns": cols})
    assert r.status_code == 422 and "carrier: 1 values, expected 2" in r.text


def test_body_and_batch_limits_are_413(smoke_pipeline):
    with TestClient(create_app(default_service, cfg_with(max_batch=5, max_body_bytes=4000))) as c:
        r = c.post("/predict/batch", json={"flights": [EXAMPLE_FLIGHT] * 6})
        assert r.status_code == 413 and "batch limit of 5" in r.json()["detail"]
        r = c.post("/predict/batch", json={"flights": [EXAMPLE_FLIGHT] * 20})
        assert r.status_code == 413 and "exceeds 4000 bytes" in r.json()["detail"]

        def chunks():  # no Content-Length: the limit counts the streamed bytes
            yield b'{"flights": ['
            for _ in range(20):
                yield (str(EXAMPLE_FLIGHT).replace("'", '"').replace("None", "null") + ",").encode()

        r = c.post("/predict/batch", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["detail"].startswith("request body exceeds")


def test_api_key_guards_predictions_only(smoke_pipeline, monkeypatch):
    monkeypatch.setenv("FD_API_KEY", "s3cret-key")
    with TestClient(create_app(default_service, CFG)) as c:
        assert c.get("/health").status_code == 200 and c.get("/ready").status_code == 200
        for headers in ({}, {"X-API-Key": "wrong"}):
            r = c.post("/predict", json=EXAMPLE_FLIGHT, headers=headers)
            assert r.status_code == 401 and r.json() == {"detail": "missing or wrong X-API-Key"}
        ok = c.post("/predict", json=EXAMPLE_FLIGHT, headers={"X-API-Key": "s3cret-key"})
        assert ok.status_code == 200
        r = c.post("/predict/batch", json={"flights": [EXAMPLE_FLIGHT]})
        assert r.status_code == 401


def test_cors_closed_by_default_open_when_configured(client, smoke_pipeline):
    preflight = {"Origin": "https://example.org", "Access-Control-Request-Method": "POST"}
    assert (
        "access-control-allow-origin" not in client.options("/predict", headers=preflight).headers
    )
    with TestClient(
        create_app(default_service, cfg_with(cors_origins=["https://example.org"]))
    ) as c:
        r = c.options("/predict", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://example.org"


class BrokenService(ModelService):
    def predict_one(self, record, request_id):
        raise RuntimeError("secret internals /etc/passwd")


def test_unexpected_error_is_json_500_without_trace(smoke_export):
    def broken(settings, cfg, paths):
        svc = BrokenService(cfg.serve.threshold)
        svc.swap(smoke_export)
        return svc

    with TestClient(create_app(broken, CFG), raise_server_exceptions=False) as c:
        r = c.post("/predict", json=EXAMPLE_FLIGHT, headers={"X-Request-ID": "trace-500"})
        assert r.status_code == 500
        assert r.json() == {"detail": "internal server error"} and "secret" not in r.text
        assert r.headers["x-request-id"] == "trace-500"  # the id the log's trace is under
        assert c.get("/nowhere").json() == {"detail": "Not Found"}
        assert c.get("/predict").status_code == 405 and c.get("/predict").json()["detail"]


def test_alias_move_is_served_after_one_poll(smoke_pipeline, mlflow_client, tmp_path):
    """A second registered version under a fresh name; moving @champion swaps the model."""
    name = "flight-delay-reload-test"
    smoke = mlflow_client.get_model_version_by_alias(CFG.registry.model_name, "champion")
    mlflow_client.create_registered_model(name)
    model_id = smoke.source.removeprefix("models:/")  # MLflow 3: the logged model behind it
    v1 = mlflow_client.create_model_version(name, smoke.source, smoke.run_id, model_id=model_id)
    v2 = mlflow_client.create_model_version(name, smoke.source, smoke.run_id, model_id=model_id)
    mlflow_client.set_registered_model_alias(name, "champion", v1.version)
    cfg = cfg_named(name)

    def watched(settings, cfg, paths):
        svc = ModelService(cfg.serve.threshold, PredictionLogger(tmp_path))
        svc.watcher = AliasWatcher(svc, cfg, smoke_pipeline, MlflowRegistry(smoke_pipeline))
        # The export holds another model (the smoke one): served from the registry at once.
        svc.watcher.start(0)  # 0: no background polls, this test polls itself
        return svc

    with TestClient(create_app(watched, cfg)) as c:
        before = c.post("/predict", json=EXAMPLE_FLIGHT).json()
        assert before["model_version"] == "1"
        assert c.get("/model").json()["source"] == "registry"
        mlflow_client.set_registered_model_alias(name, "champion", v2.version)
        c.app.state.service.watcher.poll()
        after = c.post("/predict", json=EXAMPLE_FLIGHT).json()
        assert after["model_version"] == "2"
        assert after["delay_probability"] == before["delay_probability"]  # same artifact
        info = c.get("/model").json()
        assert info["registry"]["reloads"][-1]["from"] == "1"
        assert info["registry"]["reloads"][-1]["to"] == "2"
        assert info["registry"]["reachable"] is True


def test_export_with_the_same_version_number_from_another_run_is_replaced(
    smoke_pipeline, mlflow_client, tmp_path
):
    """A version number names a model only within one store. An export (say, baked into an
    image) of `name` v1 from another store's run must give way to this registry's v1."""
    name = "flight-delay-identity-test"
    baseline = mlflow_client.search_runs(
        [mlflow_client.get_experiment_by_name(CFG.train.experiment).experiment_id],
        "tags.role = 'baseline'",
    )[0]
    mlflow_client.create_registered_model(name)
    model_uri = baseline.data.tags["model_uri"]
    model_id = model_uri.removeprefix("models:/")
    v1 = mlflow_client.create_model_version(
        name, model_uri, baseline.info.run_id, model_id=model_id
    )
    mlflow_client.set_registered_model_alias(name, "champion", v1.version)
    paths = replace(smoke_pipeline, models=tmp_path / "models")
    shutil.copytree(smoke_pipeline.champion, paths.champion)  # the smoke candidate's run
    write_json(paths.champion_metadata, {**read_json(paths.champion_metadata), "name": name})
    cfg = cfg_named(name)
    svc = ModelService(cfg.serve.threshold)
    svc.watcher = AliasWatcher(svc, cfg, paths, MlflowRegistry(paths))
    svc.watcher.start(0)
    exported = svc.champion
    assert (exported.source, exported.version) == ("export", str(v1.version))
    svc.watcher.poll()
    assert (svc.champion.source, svc.champion.version) == ("registry", str(v1.version))
    assert svc.champion.run_id == baseline.info.run_id != exported.run_id
    assert svc.champion.model.kind == "logistic"
    svc.close()


def test_unreachable_registry_serves_export_and_says_so(smoke_pipeline, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nobody there
    # The plain registry reader is MlflowClient, which retries a refused connection for
    # minutes by default; a deployment bounds it with these variables.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with TestClient(create_app(default_service, CFG)) as c:
        assert c.get("/ready").json()["source"] == "export"  # served before any poll
        # The first poll runs in the watcher's thread: wait for its verdict.
        ready = wait_until(
            lambda: (r := c.get("/ready").json())["registry"]["reachable"] is not None and r,
            timeout=60,
            what="the first registry poll",
        )
        assert ready["source"] == "export"
        assert ready["registry"]["reachable"] is False and ready["registry"]["error"]
        assert c.post("/predict", json=EXAMPLE_FLIGHT).status_code == 200
        assert c.get("/model").json()["source"] == "export"
