"""Parity of each serving fast path with its plain path (config `serve.fast_paths`).

- `lightgbm_c_api`: the exported model scored through LightGBM's C API (src/serving/lgb_capi.py)
  and through the `lightgbm` package's Booster, one flight at a time and as columns, on every
  flight of the smoke test split (each once, at one of its leads), equals the logged MLflow
  pyfunc; and the API answers the same
  with the switch on and off. The same again for a copy of the export whose model carries a
  post-hoc calibrator (Platt, isotonic) fitted on the smoke validation month, the pyfunc
  loaded in a fresh process from the export's own code folder.
- `registry_rest`: the registry read over REST without MLflow (src/serving/registry_rest.py)
  and through MlflowClient (src/serving/registry.py), against a real `mlflow server`, give
  the same version, run, metadata and probabilities; the REST path never imports MLflow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient

from app.main import create_app, default_service
from src.common.paths import ROOT, Paths
from src.common.schema import EXAMPLE_FLIGHT, PREDICTION, REQUEST_FIELDS, TARGET
from src.common.settings import Settings
from src.model.calibration import CALIBRATORS
from src.model.features import request_columns
from src.model.fit import one_lead_each
from src.model.model import LightGBMBooster, load, to_bytes
from src.serving.lgb_capi import CApiBooster
from src.serving.loader import load_export, registry_for
from src.serving.registry import MlflowRegistry
from src.serving.registry_rest import RestRegistry
from tests.api.support import CFG, cfg_with, columns_of, records
from tests.conftest import mlflow_server

# Every row of the test split, pyfuncs in fresh processes, a real `mlflow server`.
pytestmark = pytest.mark.slow
TOLERANCE = 1e-9
ESTIMATOR = {True: CApiBooster, False: LightGBMBooster}  # by lightgbm_c_api


def c_api(on: bool, **serve):
    return cfg_with(fast_paths={"lightgbm_c_api": on}, **serve)


@pytest.fixture(scope="module")
def test_split(test_split) -> pd.DataFrame:
    """Every test flight once, at one of its leads (as training takes them): the scoring
    paths do not depend on the lead, and the five leads of a flight would only repeat the
    same work five times (they did: this module took most of the suite's time)."""
    return one_lead_each(test_split)


@pytest.fixture(scope="module")
def logged(smoke_pipeline, test_split) -> np.ndarray:
    """The logged pyfunc's probabilities (what `mlflow models serve` would answer) for every
    test row, from the export's MLmodel."""
    import mlflow

    pyfunc = mlflow.pyfunc.load_model(str(smoke_pipeline.champion))
    proba = pyfunc.predict(test_split[list(REQUEST_FIELDS)])[PREDICTION].to_numpy()
    assert len(proba) == len(test_split) > 20000 and np.isfinite(proba).all()
    return proba


@pytest.fixture(scope="module")
def test_records(test_split) -> list[dict]:
    return records(test_split)


# ------------------------------------------------------------------ lightgbm_c_api: model
@pytest.mark.parametrize("on", [True, False], ids=["c_api", "lightgbm"])
def test_export_equals_logged_pyfunc_on_every_test_row(
    on, smoke_pipeline, test_split, test_records, logged
):
    loaded = load_export(c_api(on), smoke_pipeline)
    assert type(loaded.model.estimator) is ESTIMATOR[on]  # the switch picked this path
    one = np.array([loaded.model.predict_one(r) for r in test_records])
    assert len(one) == len(logged)
    assert np.abs(one - logged).max() <= TOLERANCE
    as_arrays = {c: test_split[c].to_numpy() for c in REQUEST_FIELDS}  # batch scoring's input
    assert np.abs(loaded.model.predict_proba(as_arrays) - logged).max() <= TOLERANCE
    as_lists = columns_of(test_records)  # the API's input: lists, None for missing
    assert np.abs(loaded.model.predict_proba(as_lists) - logged).max() <= TOLERANCE


# ------------------------------------------------------------------ lightgbm_c_api: API
@pytest.mark.parametrize("on", [True, False], ids=["c_api", "lightgbm"])
def test_api_answers_equal_logged_pyfunc(
    on, smoke_pipeline, test_records, logged, tmp_path, monkeypatch
):
    monkeypatch.setenv("FD_DATA_DIR", str(tmp_path))  # its prediction log stays here
    sample = np.linspace(0, len(test_records) - 1, 150).astype(int)  # spread over the month
    recs, expected = [test_records[i] for i in sample], logged[sample]
    cfg = c_api(on, reload_seconds=0)  # the export only: no registry poll swaps the model
    with TestClient(create_app(default_service, cfg)) as c:
        assert type(c.app.state.service.champion.model.estimator) is ESTIMATOR[on]
        one = [c.post("/predict", json=r).json()["delay_probability"] for r in recs]
        assert np.abs(np.array(one) - expected).max() <= TOLERANCE
        for body in ({"flights": recs}, {"columns": columns_of(recs)}):
            r = c.post("/predict/batch", json=body)
            assert r.status_code == 200, r.text[:300]
            batch = [p["delay_probability"] for p in r.json()["predictions"]]
            assert np.abs(np.array(batch) - expected).max() <= TOLERANCE


# ------------------------------------------------------------------ with a calibrator
# Scores a pyfunc folder with MLflow in a fresh interpreter started outside the repo, so
# `src` can only come from the folder's own code (what a logged model ships): argv = the
# folder, the flights (parquet), where to save the probabilities (.npy).
SCORE_PYFUNC = """
import sys
import mlflow, numpy as np, pandas as pd
pyfunc = mlflow.pyfunc.load_model(sys.argv[1])
np.save(sys.argv[3], pyfunc.predict(pd.read_parquet(sys.argv[2]))["delay_probability"])
import src.model.model
print(src.model.model.__file__)
"""


@pytest.fixture(scope="module", params=["platt", "isotonic"])
def calibrated_export(request, smoke_pipeline, tmp_path_factory) -> Paths:
    """A copy of the smoke export whose model carries a calibrator of the param's method,
    fitted on the smoke validation month (whether or not training would keep one)."""
    validation = pd.read_parquet(smoke_pipeline.processed / "validation.parquet")
    model = replace(load(smoke_pipeline.champion_model), calibrator=None)
    raw = model.predict_proba(request_columns(validation))
    calibrator = CALIBRATORS[request.param](raw, validation[TARGET].to_numpy())
    folder = tmp_path_factory.mktemp(f"calibrated-{request.param}")
    shutil.copytree(smoke_pipeline.champion, folder / "models" / "champion")
    paths = replace(smoke_pipeline, models=folder / "models", mlflow=folder / "mlruns")
    paths.champion_model.write_bytes(to_bytes(replace(model, calibrator=calibrator)))
    return paths


@pytest.fixture(scope="module")
def calibrated_logged(calibrated_export, test_split, tmp_path_factory) -> np.ndarray:
    """The calibrated export's pyfunc probabilities for every test row (fresh process)."""
    folder = tmp_path_factory.mktemp("calibrated-pyfunc")
    test_split[list(REQUEST_FIELDS)].to_parquet(folder / "flights.parquet")
    done = subprocess.run(
        [sys.executable, "-c", SCORE_PYFUNC, str(calibrated_export.champion)]
        + [str(folder / "flights.parquet"), str(folder / "proba.npy")],
        cwd=folder,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    shipped = calibrated_export.champion / "code" / "src" / "model" / "model.py"
    assert done.stdout.strip().splitlines()[-1] == str(shipped)  # the export's own code
    return np.load(folder / "proba.npy")


@pytest.mark.parametrize("on", [True, False], ids=["c_api", "lightgbm"])
def test_calibrated_export_equals_its_logged_pyfunc_on_every_test_row(
    on, calibrated_export, calibrated_logged, test_records
):
    loaded = load_export(c_api(on), calibrated_export)
    assert type(loaded.model.estimator) is ESTIMATOR[on] and loaded.model.calibrator
    one = np.array([loaded.model.predict_one(r) for r in test_records])
    assert len(one) == len(calibrated_logged)
    assert np.abs(one - calibrated_logged).max() <= TOLERANCE
    as_lists = columns_of(test_records)
    assert np.abs(loaded.model.predict_proba(as_lists) - calibrated_logged).max() <= TOLERANCE
    raw = replace(loaded.model, calibrator=None).predict_proba(as_lists)
    assert np.abs(calibrated_logged - raw).max() > 1e-3  # the calibrator changes the scores


def test_api_fast_path_applies_the_calibrator(
    calibrated_export, test_records, calibrated_logged, tmp_path, monkeypatch
):
    monkeypatch.setenv("FD_DATA_DIR", str(tmp_path))  # its prediction log stays here
    monkeypatch.setenv("FD_MODELS_DIR", str(calibrated_export.models))
    monkeypatch.setenv("FD_MLFLOW_DIR", str(calibrated_export.mlflow))  # empty: no registry
    sample = np.linspace(0, len(test_records) - 1, 150).astype(int)
    recs, expected = [test_records[i] for i in sample], calibrated_logged[sample]
    with TestClient(create_app(default_service, c_api(True, reload_seconds=0))) as c:
        model = c.app.state.service.champion.model
        assert type(model.estimator) is CApiBooster and model.calibrator
        one = [c.post("/predict", json=r).json()["delay_probability"] for r in recs]
        assert np.abs(np.array(one) - expected).max() <= TOLERANCE
        r = c.post("/predict/batch", json={"flights": recs})
        batch = [p["delay_probability"] for p in r.json()["predictions"]]
        assert np.abs(np.array(batch) - expected).max() <= TOLERANCE


# ------------------------------------------------------------------ registry_rest
@pytest.fixture(scope="module")
def tracking_server(smoke_pipeline, tmp_path_factory):
    """A real `mlflow server` over a copy of the smoke store (the smoke store itself is
    shared by other tests): yields its URL."""
    folder = tmp_path_factory.mktemp("registry-parity")
    db = folder / "registry.db"
    shutil.copy(smoke_pipeline.mlflow / "mlflow.db", db)
    with mlflow_server(f"sqlite:///{db}", folder / "artifacts", folder / "server.log") as (
        url,
        _,
    ):
        yield url
    from src.tracking.store import connect

    connect(smoke_pipeline)  # MlflowClient below pointed MLflow at the server: point it back


@pytest.fixture(scope="module")
def served_paths(smoke_pipeline, tracking_server):
    return replace(smoke_pipeline, tracking=tracking_server)


def test_registry_switch_picks_the_reader(served_paths, smoke_pipeline):
    rest = cfg_with(fast_paths={"registry_rest": True})
    plain = cfg_with(fast_paths={"registry_rest": False})
    assert type(registry_for(rest, served_paths, Settings())) is RestRegistry
    assert type(registry_for(plain, served_paths, Settings())) is MlflowRegistry
    # A local store has no REST API: MlflowClient whatever the switch says.
    assert type(registry_for(rest, smoke_pipeline, Settings())) is MlflowRegistry


@pytest.mark.parametrize("on", [True, False], ids=["c_api", "lightgbm"])
def test_rest_and_mlflow_registries_agree(on, served_paths, tracking_server, test_split, logged):
    name, alias = CFG.registry.model_name, CFG.registry.alias
    rest, plain = RestRegistry(tracking_server, Settings()), MlflowRegistry(served_paths)
    version, run_id = rest.resolve_alias(name, alias)
    assert (version, run_id) == plain.resolve_alias(name, alias)
    assert version == "1" and run_id
    booster = CApiBooster if on else LightGBMBooster.from_text
    found = {
        "rest": rest.load_version(name, version, booster),
        "mlflow": plain.load_version(name, version, booster),
    }
    assert found["rest"] is not None, "the REST reader could not read this artifact store"
    (rest_model, rest_run, rest_meta), (mlflow_model, mlflow_run, mlflow_meta) = found.values()
    assert rest_run == mlflow_run and rest_run
    assert rest_meta == mlflow_meta and rest_meta["metrics"]["test_roc_auc"] > 0.6
    assert type(rest_model.estimator) is type(mlflow_model.estimator) is ESTIMATOR[on]
    cols = {c: test_split[c].to_numpy() for c in REQUEST_FIELDS}
    by_rest, by_mlflow = rest_model.predict_proba(cols), mlflow_model.predict_proba(cols)
    assert np.abs(by_rest - by_mlflow).max() <= TOLERANCE
    assert np.abs(by_rest - logged).max() <= TOLERANCE
    assert rest_model.predict_one(EXAMPLE_FLIGHT) == pytest.approx(
        mlflow_model.predict_one(EXAMPLE_FLIGHT), abs=TOLERANCE
    )


# Loads the champion the way an API worker does (registry_for + load_version), in a fresh
# interpreter, and reports which heavy packages that imported.
LOAD_IN_FRESH_PROCESS = """
import json, sys
from src.common.config import load_config
from src.common.paths import get_paths
from src.common.schema import EXAMPLE_FLIGHT
from src.common.settings import Settings
from src.serving.loader import load_version, registry_for

cfg, paths = load_config(sys.argv[1]), get_paths()
registry = registry_for(cfg, paths, Settings())
version, _ = registry.resolve_alias(cfg.registry.model_name, cfg.registry.alias)
loaded = load_version(cfg, paths, registry, version)
print(json.dumps({
    "registry": type(registry).__name__,
    "version": version,
    "run_id": loaded.run_id,
    "p": loaded.model.predict_one(EXAMPLE_FLIGHT),
    "imported": sorted({m.split(".")[0] for m in sys.modules} & {"mlflow", "lightgbm", "pandas"}),
}))
"""


def load_in_fresh_process(cfg, tracking_uri: str, folder) -> dict:
    config = folder / f"serve-{cfg.serve.fast_paths.registry_rest}.yml"
    config.write_text(yaml.safe_dump(cfg.model_dump()))
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_IN_FRESH_PROCESS, str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_rest_registry_loads_without_importing_mlflow(tracking_server, smoke_export, tmp_path):
    expected = smoke_export.model.predict_one(EXAMPLE_FLIGHT)
    fast = load_in_fresh_process(
        cfg_with(fast_paths={"registry_rest": True, "lightgbm_c_api": True}),
        tracking_server,
        tmp_path,
    )
    assert fast["registry"] == "RestRegistry" and fast["version"] == "1"
    assert fast["imported"] == [], fast  # no mlflow (nor lightgbm, pandas: the C API path)
    assert fast["p"] == pytest.approx(expected, abs=TOLERANCE)
    # The control: the plain path does import MLflow, so the check above can see it.
    plain = load_in_fresh_process(
        cfg_with(fast_paths={"registry_rest": False}), tracking_server, tmp_path
    )
    assert plain["registry"] == "MlflowRegistry" and "mlflow" in plain["imported"]
    assert (plain["version"], plain["run_id"]) == (fast["version"], fast["run_id"])
    assert plain["p"] == pytest.approx(expected, abs=TOLERANCE)
