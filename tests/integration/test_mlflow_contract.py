"""The logged model's contract with MLflow's own tooling (regression tests).

The registered champion is an MLflow pyfunc: `mlflow models serve` and
`mlflow.pyfunc.load_model` must score what the API scores, from the inputs the API and the
public data give it:

* records that leave out the optional fields (tailnum, weather), as the API allows;
* whole numbers where the schema says double (temp 78) and int64 miles (distance 719), as
  JSON and the public CSV files hold them.

The server runs from an empty folder, so it loads the code logged with the model (its
`code` folder), not the repo's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from src.common.paths import Paths
from src.common.schema import (
    EXAMPLE_FLIGHT,
    OPTIONAL_FIELDS,
    PREDICTION,
    REQUEST,
    REQUEST_FIELDS,
    WEATHER,
)
from src.common.servers import free_port, http_json, stop_server
from src.data.snapshot import package_data_dir
from src.registry.versions import CHAMPION, alias_version
from src.serving.loader import load_export
from src.serving.service import ModelService
from tests.conftest import wait_or_fail
from tests.integration.support import CFG, columns, records

pytestmark = pytest.mark.slow
NAME = CFG.registry.model_name
REQUIRED = [c.name for c in REQUEST if not c.nullable]
TOLERANCE = 1e-9  # |served - API| per flight; both run the same model file's code


@contextmanager
def pyfunc_server(model_uri: str, tracking_uri: str, folder):
    """`mlflow models serve` for `model_uri` on a free loopback port, run from `folder` (not
    the repo) in its own session; stopped, workers included, whatever happens."""
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri]
    cmd += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env |= {"DO_NOT_TRACK": "true", "OMP_NUM_THREADS": "1"}
    # MLflow starts `uvicorn` by name: this interpreter's scripts first on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    log = folder / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            url = f"http://127.0.0.1:{port}"
            # Generous: the server imports MLflow and downloads the model on a loaded machine.
            wait_or_fail(f"{url}/ping", proc, log, timeout=180)
            yield url, log
        finally:
            stop_server(proc, timeout=60)


@pytest.fixture(scope="module")
def served(smoke_pipeline: Paths, mlflow_client, tmp_path_factory):
    """The registered smoke champion behind MLflow's scoring server: (url, server log)."""
    # The export the API serves is the version the server serves.
    version = alias_version(mlflow_client, NAME, CHAMPION)
    assert str(load_export(CFG, smoke_pipeline).version) == version
    folder = tmp_path_factory.mktemp("mlflow-serve")  # empty: no `src` to import from
    with pyfunc_server(f"models:/{NAME}@{CHAMPION}", smoke_pipeline.tracking_uri, folder) as s:
        yield s


@pytest.fixture(scope="module")
def api(smoke_pipeline):
    """The API (real routes and parsing) serving the exported champion."""

    def service(settings, cfg, paths) -> ModelService:
        svc = ModelService(cfg.serve.threshold)
        svc.swap(load_export(cfg, paths))
        return svc

    with TestClient(create_app(service, CFG)) as client:
        yield client


def invoke(url: str, log, recs: list[dict]) -> np.ndarray:
    status, body = http_json(f"{url}/invocations", {"dataframe_records": recs}, timeout=120)
    assert status == 200, f"{status} {body}\n{log.read_text()[-3000:]}"
    return np.array([p[PREDICTION] for p in body["predictions"]], dtype=float)


def api_scores(api: TestClient, recs: list[dict]) -> np.ndarray:
    r = api.post("/predict/batch", json={"flights": recs})
    assert r.status_code == 200, r.text
    return np.array([p["delay_probability"] for p in r.json()["predictions"]], dtype=float)


def test_served_model_scores_records_without_optional_fields(
    smoke_pipeline, served, api, test_split
):
    url, log = served
    rows = test_split.sample(300, random_state=0)
    partial = records(rows, REQUIRED)  # no tailnum, no weather: the API's optional fields
    assert all(set(r) == set(REQUIRED) for r in partial)

    got = invoke(url, log, partial)
    expected = api_scores(api, partial)
    assert len(got) == len(partial)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    export = load_export(CFG, smoke_pipeline).model  # the API's model, called directly
    np.testing.assert_allclose(export.predict_proba(columns(partial)), expected, atol=1e-12)
    # Leaving the fields out is scored as missing, not as some default: it changes scores.
    full = api_scores(api, records(rows))
    assert np.abs(full - expected).max() > 0.01


def test_served_model_takes_whole_numbers(served, api, test_split):
    url, log = served
    example = {**EXAMPLE_FLIGHT, "temp": 78}  # distance 719: int; temp 78: int in JSON
    rows = test_split[test_split["temp"].notna()].sample(100, random_state=1)
    recs = [example] + [
        {**r, "distance": int(r["distance"]), "temp": int(round(r["temp"]))} for r in records(rows)
    ]
    assert all(type(r["distance"]) is int and type(r["temp"]) is int for r in recs)

    got = invoke(url, log, recs)
    np.testing.assert_allclose(got, api_scores(api, recs), rtol=0, atol=TOLERANCE)
    one = api.post("/predict", json=example)
    assert one.status_code == 200, one.text
    assert got[0] == pytest.approx(one.json()["delay_probability"], abs=TOLERANCE)


def test_served_model_refuses_a_missing_required_field(served):
    url, _ = served
    flight = {k: v for k, v in EXAMPLE_FLIGHT.items() if k != "carrier"}
    status, body = http_json(f"{url}/invocations", {"dataframe_records": [flight]}, timeout=120)
    assert status == 400, body
    assert "carrier" in str(body)


# ---------------------------------------------------------------- in-process pyfunc
@pytest.fixture(scope="module")
def public_flights() -> pd.DataFrame:
    """The first 3,000 flights of the public CSV, joined to the origin's weather at the
    scheduled hour; dtypes as plain pandas reads them (distance int64, temp float64)."""
    folder = package_data_dir()
    flights = pd.read_csv(folder / "flights.csv.zip", nrows=3000)
    weather = pd.read_csv(folder / "weather.csv")
    keys = ["origin", "time_hour"]
    frame = flights.merge(weather[[*keys, *(c.name for c in WEATHER)]], on=keys, how="left")
    assert frame["distance"].dtype == np.int64 and frame["year"].dtype == np.int64
    assert frame["temp"].notna().mean() > 0.9 and frame["tailnum"].isna().any()
    return frame


@pytest.fixture
def pyfunc(smoke_pipeline, monkeypatch):
    """MLflow's own load of the exported champion (it puts the model's code folder on
    sys.path: restored afterwards)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    return mlflow.pyfunc.load_model(str(smoke_pipeline.champion))


@pytest.mark.parametrize("optional", ["given", "left out"])
def test_pyfunc_scores_the_public_data_as_it_is(smoke_pipeline, pyfunc, public_flights, optional):
    frame = public_flights
    if optional == "left out":
        frame = frame.drop(columns=list(OPTIONAL_FIELDS), errors="ignore")  # the store's: absent
    out = pyfunc.predict(frame)  # all of the file's columns; MLflow enforces the signature

    assert list(out.columns) == [PREDICTION] and len(out) == len(frame)
    export = load_export(CFG, smoke_pipeline)
    given = [f for f in REQUEST_FIELDS if f in frame]
    expected = export.model.predict_proba(columns(records(frame, given)))
    np.testing.assert_allclose(out[PREDICTION].to_numpy(), expected, rtol=0, atol=1e-12)
