"""Production behaviour in-process: metrics, API key, limits, CORS, JSON errors, columnar
batches, hot reload and registry loss. The smoke champion, a real registry, no mocks."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app, default_service
from app.prediction_log import PredictionLogger
from app.reload import AliasWatcher
from app.schemas import EXAMPLE_FLIGHT
from app.service import ModelService
from src.champion import load_from_export
from src.common.config import load_config
from src.common.schema import REQUEST_FIELDS
from src.serve import free_port
from tests.conftest import SMOKE_CONFIG

CFG = load_config(SMOKE_CONFIG)


def cfg_with(**serve):
    return CFG.model_copy(update={"serve": CFG.serve.model_copy(update=serve)})


@pytest.fixture(scope="module")
def client(smoke_pipeline):
    with TestClient(create_app(default_service, CFG)) as c:
        yield c


def records(test_split, n: int) -> list[dict]:
    rows = test_split[list(REQUEST_FIELDS)].head(n)
    return rows.astype(object).where(rows.notna(), None).to_dict("records")


def test_fast_path_equals_logged_pyfunc_on_every_test_row(smoke_pipeline, test_split):
    import mlflow

    loaded = load_from_export(smoke_pipeline.champion)
    pyfunc = mlflow.pyfunc.load_model(str(smoke_pipeline.champion))
    logged = pyfunc.predict(test_split[list(REQUEST_FIELDS)])["delay_probability"].to_numpy()
    fast = np.array([loaded.model.predict_one(r) for r in records(test_split, len(test_split))])
    assert len(fast) == len(test_split) > 20000
    assert np.abs(fast - logged).max() <= 1e-9
    batch = loaded.model.predict_proba({c: test_split[c].to_numpy() for c in REQUEST_FIELDS})
    assert np.abs(batch - logged).max() <= 1e-9


def test_metrics_count_routes_statuses_decisions_and_model_version(client):
    client.post("/predict", json=EXAMPLE_FLIGHT)
    client.post("/predict/batch", json={"flights": [EXAMPLE_FLIGHT] * 3})
    client.post("/predict", json={**EXAMPLE_FLIGHT, "month": 13})
    text = client.get("/metrics").text
    assert 'fd_http_requests_total{route="/predict",status="200"}' in text
    assert 'fd_http_requests_total{route="/predict",status="422"}' in text
    assert 'fd_http_request_duration_seconds_bucket{le="0.005",route="/predict/batch"}' in text
    assert 'fd_model_info{name="flight-delay-smoke",source="export",version="1"} 1.0' in text
    scored = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("fd_predictions_total{")
    )
    assert scored >= 4


def test_columnar_batch_equals_records(client, test_split):
    recs = records(test_split, 50)
    columns = {f: [r[f] for r in recs] for f in REQUEST_FIELDS}
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
    def predict_one(self, record):
        raise RuntimeError("secret internals /etc/passwd")


def test_unexpected_error_is_json_500_without_trace(smoke_pipeline):
    loaded = load_from_export(smoke_pipeline.champion)
    app = create_app(lambda: BrokenService(loaded, 0.3), CFG)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/predict", json=EXAMPLE_FLIGHT)
        assert r.status_code == 500
        assert r.json() == {"detail": "internal server error"} and "secret" not in r.text
        assert c.get("/nowhere").json() == {"detail": "Not Found"}
        assert c.get("/predict").status_code == 405 and c.get("/predict").json()["detail"]


def test_alias_move_is_served_after_one_poll(smoke_pipeline, mlflow_client, tmp_path):
    """A second registered version under a fresh name; moving @champion swaps the model."""
    name = "flight-delay-reload-test"
    smoke = mlflow_client.get_model_version_by_alias(CFG.registry.model_name, "champion")
    mlflow_client.create_registered_model(name)
    v1 = mlflow_client.create_model_version(name, smoke.source, smoke.run_id)
    v2 = mlflow_client.create_model_version(name, smoke.source, smoke.run_id)
    mlflow_client.set_registered_model_alias(name, "champion", v1.version)
    cfg = CFG.model_copy(update={"registry": CFG.registry.model_copy(update={"model_name": name})})

    svc = ModelService(None, 0.3, PredictionLogger(tmp_path))
    watcher = AliasWatcher(svc, cfg, smoke_pipeline)
    watcher.start_serving(0)
    with TestClient(create_app(lambda: svc, cfg)) as c:
        before = c.post("/predict", json=EXAMPLE_FLIGHT).json()
        assert before["model_version"] == "1"
        mlflow_client.set_registered_model_alias(name, "champion", v2.version)
        watcher.check()
        after = c.post("/predict", json=EXAMPLE_FLIGHT).json()
        assert after["model_version"] == "2"
        assert after["delay_probability"] == before["delay_probability"]  # same artifact
        info = c.get("/model").json()
        assert info["registry"]["reloads"][-1]["from"] == "1"
        assert info["registry"]["reloads"][-1]["to"] == "2"


def test_unreachable_registry_serves_export_and_says_so(smoke_pipeline, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nobody there
    with TestClient(create_app(default_service, CFG)) as c:
        ready = c.get("/ready").json()
        assert ready["source"] == "export"
        assert ready["registry"]["reachable"] is False and ready["registry"]["error"]
        assert c.post("/predict", json=EXAMPLE_FLIGHT).status_code == 200
        assert c.get("/model").json()["source"] == "export"
