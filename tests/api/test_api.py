"""The FastAPI app on the smoke champion: in-process TestClient and a real uvicorn."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.main import create_app, default_service
from src import serve
from src.common.paths import SMOKE_CONFIG
from src.common.schema import EXAMPLE_FLIGHT
from src.serving.prediction_log import read_log
from src.serving.service import ModelService
from tests.api.support import CFG, cfg_with, wait_until


@pytest.fixture(scope="module")
def client(smoke_pipeline):
    with TestClient(create_app()) as c:  # the config from FD_CONFIG (the smoke config)
        yield c


def test_health_ready_and_model(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["source"] == "export"  # served at once
    # Then the background poll finds the registry in sync: wait for it (MLflow's import
    # and the SQLite store's first query take seconds on a busy machine).
    ready = wait_until(
        lambda: (r := client.get("/ready").json())["registry"]["reachable"] is True and r,
        timeout=120,
        what="the first registry poll",
    )
    assert ready["source"] == "export" and ready["registry"]["reloads"] == [
        {**ready["registry"]["reloads"][0], "from": None, "to": "1", "source": "export"}
    ]
    assert ready["shadow_version"] is None  # no @challenger in the smoke registry
    info = client.get("/model").json()
    assert info["name"] == CFG.registry.model_name and info["alias"] == "champion"
    assert info["shadow_version"] is None
    assert info["metadata"]["metrics"]["test_roc_auc"] > 0.6


def test_docs_render_offline(client):
    html = client.get("/docs").text
    assert "cdn" not in html.lower()
    bundle = html.split('src="')[1].split('"')[0]
    assert bundle.endswith("swagger-ui-bundle.js")
    assert client.get(bundle).status_code == 200
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_predict_one_flight(client):
    r = client.post("/predict", json=EXAMPLE_FLIGHT)
    assert r.status_code == 200
    body = r.json()
    assert 0 < body["delay_probability"] < 1
    assert body["delayed"] == (body["delay_probability"] >= CFG.serve.threshold)
    assert body["model_name"] == CFG.registry.model_name and body["model_version"] == "1"


def test_batch_matches_single_predictions(client):
    other = {**EXAMPLE_FLIGHT, "hour": 7, "carrier": "DL", "tailnum": None, "temp": None}
    batch = client.post("/predict/batch", json={"flights": [EXAMPLE_FLIGHT, other]}).json()
    singles = [client.post("/predict", json=f).json() for f in (EXAMPLE_FLIGHT, other)]
    assert [p["delay_probability"] for p in batch["predictions"]] == [
        s["delay_probability"] for s in singles
    ]


def test_unknown_carrier_and_destination_are_scored_as_unseen(client):
    """An origin must be one the model knows (tests/api/test_hostile_input.py); a carrier or
    a destination it never saw is scored as the model scores a missing one."""
    unseen = {**EXAMPLE_FLIGHT, "carrier": "ZZ", "dest": "QQQ"}
    r = client.post("/predict", json=unseen)
    assert r.status_code == 200
    assert (
        r.json()["delay_probability"]
        != client.post("/predict", json=EXAMPLE_FLIGHT).json()["delay_probability"]
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"month": 13}, "month"),
        ({"carrier": "united airlines"}, "carrier"),
        ({"distance": "far"}, "distance"),
        ({"distance": 719.5}, "distance"),  # whole miles (the data's int64)
        ({"hour": None}, "hour"),
        ({"wind_speed": -1}, "wind_speed"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_malformed_request_is_422_naming_the_field(client, change, field):
    r = client.post("/predict", json={**EXAMPLE_FLIGHT, **change})
    assert r.status_code == 422
    assert [e["loc"][-1] for e in r.json()["detail"]] == [field]
    assert all("input" not in e for e in r.json()["detail"])  # the input is never echoed


def test_missing_field_and_impossible_date_are_422(client):
    flight = {k: v for k, v in EXAMPLE_FLIGHT.items() if k != "origin"}
    r = client.post("/predict", json=flight)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "origin"]
    r = client.post("/predict", json={**EXAMPLE_FLIGHT, "month": 2, "day": 30})
    assert r.status_code == 422 and "2013-02-30 is not a date" in r.text
    assert client.post("/predict/batch", json={"flights": []}).status_code == 422


def test_no_model_gives_503_not_500(smoke_pipeline):
    with TestClient(create_app(lambda settings, cfg, paths: ModelService(0.3))) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/ready").status_code == 503
        assert c.post("/predict", json=EXAMPLE_FLIGHT).status_code == 503


def test_bench_echo_answers_only_when_enabled(smoke_pipeline, monkeypatch):
    with TestClient(create_app(lambda settings, cfg, paths: ModelService(0.3))) as c:
        assert c.post("/bench/echo", json=EXAMPLE_FLIGHT).status_code == 404
        # Checked before the body is parsed: a disabled route does not validate anything.
        assert c.post("/bench/echo", json={**EXAMPLE_FLIGHT, "month": 13}).status_code == 404
        assert "/bench/echo" not in c.get("/openapi.json").json()["paths"]
    monkeypatch.setenv("FD_BENCH_ECHO", "1")  # read by the lifespan
    with TestClient(create_app(lambda settings, cfg, paths: ModelService(0.3))) as c:
        r = c.post("/bench/echo", json=EXAMPLE_FLIGHT)
        assert r.status_code == 200 and r.json() == {"delay_probability": 0.5, "delayed": True}
        assert c.post("/bench/echo", json={**EXAMPLE_FLIGHT, "month": 13}).status_code == 422


def test_every_prediction_is_logged_by_shutdown(smoke_pipeline, tmp_path, monkeypatch):
    monkeypatch.setenv("FD_DATA_DIR", str(tmp_path))  # the log lands in tmp_path/predictions
    with TestClient(create_app(default_service)) as c:
        ids = [c.post("/predict", json=EXAMPLE_FLIGHT).json()["request_id"] for _ in range(25)]
        c.post("/predict/batch", json={"flights": [EXAMPLE_FLIGHT] * 10})
    rows, torn = read_log(tmp_path / "predictions")
    assert len(rows) == 35 and torn == 0
    assert set(ids) <= set(rows["request_id"])
    assert (rows["carrier"] == "UA").all() and rows["delay_probability"].between(0, 1).all()
    assert (rows["model_version"] == "1").all() and rows["wind_gust"].isna().all()
    assert (rows["distance"] == EXAMPLE_FLIGHT["distance"]).all()


@pytest.mark.parametrize("fast", [True, False], ids=["batch_parse", "plain"])
def test_the_flight_number_is_logged_and_changes_no_answer(
    smoke_pipeline, tmp_path, monkeypatch, fast
):
    """The optional flight number reaches the prediction log (one flight, record and
    column batches), and the answers are those of the same flights without it."""
    monkeypatch.setenv("FD_DATA_DIR", str(tmp_path))
    numbered = [{**EXAMPLE_FLIGHT, "flight": 1545}, {**EXAMPLE_FLIGHT, "hour": 7}]
    columns = {f: [r.get(f) for r in numbered] for f in (*EXAMPLE_FLIGHT, "flight")}
    bare = [{k: v for k, v in r.items() if k != "flight"} for r in numbered]

    def answers(c, flights, cols=None) -> list:
        bodies = [("/predict", f) for f in flights] + [("/predict/batch", {"flights": flights})]
        bodies += [("/predict/batch", {"columns": cols})] if cols else []
        out = [c.post(path, json=body).json() for path, body in bodies]
        return [{k: v for k, v in r.items() if k != "request_id"} for r in out]

    with TestClient(create_app(default_service, cfg_with(fast_paths={"batch_parse": fast}))) as c:
        with_number = answers(c, numbered, columns)
        without = answers(c, bare)
    assert with_number[:3] == without and with_number[3] == without[2]
    rows, _ = read_log(tmp_path / "predictions")
    assert list(rows["flight"].head(6)) == [1545, pd.NA, 1545, pd.NA, 1545, pd.NA]
    assert rows["flight"].tail(4).isna().all()


@pytest.mark.slow
def test_real_uvicorn_on_loopback(smoke_pipeline):
    """`python -m src.serve --check`: a real server process answers /ready and /predict."""
    serve.check(str(SMOKE_CONFIG))
