"""train + register against a real `mlflow server` on a free loopback port; serving falls
back to the exported champion when that server goes away."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from mlflow import MlflowClient

from app.schemas import EXAMPLE_FLIGHT
from src.champion import load_champion
from src.common.config import load_config
from src.common.io import read_json
from src.common.paths import ROOT, get_paths
from tests.conftest import SMOKE_CONFIG
from tests.conftest import mlflow_server as conftest_server

pytestmark = pytest.mark.slow
CFG = load_config(SMOKE_CONFIG)


@pytest.fixture
def mlflow_server(tmp_path):
    with conftest_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts") as server:
        yield server


def run_stage(module: str, env: dict) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--config", str(SMOKE_CONFIG)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_train_register_against_server_then_survive_its_loss(
    smoke_pipeline, mlflow_server, tmp_path, monkeypatch
):
    url, proc = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("FD_MODELS_DIR", str(tmp_path / "models"))  # processed data is shared
    env = dict(os.environ)
    run_stage("src.train", env)
    run_stage("src.register", env)

    version = MlflowClient(tracking_uri=url, registry_uri=url).get_model_version_by_alias(
        CFG.registry.model_name, "champion"
    )
    meta = read_json(get_paths().champion / "metadata.json")
    assert meta["run_id"] == version.run_id

    served = load_champion(CFG, get_paths())
    assert (served.source, served.run_id) == ("registry", version.run_id)
    assert served.metadata["metrics"]["test_roc_auc"] > 0.5
    assert served.metadata["git_commit"] and served.metadata["data_manifest_sha256"]

    # What an API worker does on a reload: the version's servable form over REST, from the
    # server's proxied artifact store, with no MLflow import; same scores as the export.
    check = (
        "import sys, numpy as np\n"
        "from src.champion import load_from_export, load_from_registry\n"
        "from src.common.config import load_config\n"
        "from src.common.paths import get_paths\n"
        "from src.common.schema import REQUEST_FIELDS\n"
        f"cfg = load_config({str(SMOKE_CONFIG)!r})\n"
        "loaded = load_from_registry(cfg, get_paths())\n"
        "assert 'mlflow' not in sys.modules, 'MLflow imported'\n"
        "from app.schemas import EXAMPLE_FLIGHT\n"
        "cols = {f: [EXAMPLE_FLIGHT[f]] * 3 for f in REQUEST_FIELDS}\n"
        "export = load_from_export(get_paths().champion)\n"
        "assert np.array_equal(loaded.model.predict_proba(cols), export.model.predict_proba(cols))\n"
        "print(loaded.version, loaded.run_id)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [version.version, version.run_id]

    # A version logged before servable.pkl existed: MLflow's pyfunc instead, same scores.
    model_id = version.source.removeprefix("models:/")  # the MLflow 3 logged model
    (servable,) = (tmp_path / "artifacts").rglob(f"{model_id}/**/servable.pkl")
    servable.unlink()
    older = load_champion(CFG, get_paths())
    assert (older.source, older.version) == ("registry", version.version)
    cols = {f: [v] for f, v in EXAMPLE_FLIGHT.items()}
    assert np.array_equal(older.model.predict_proba(cols), served.model.predict_proba(cols))

    proc.terminate()
    proc.wait(timeout=30)
    start = time.monotonic()
    fallback = load_champion(CFG, get_paths())
    assert (fallback.source, fallback.run_id) == ("export", version.run_id)
    assert time.monotonic() - start < 30
