"""train + register against a real `mlflow server` on a free loopback port; both registry
readers (MLflow's client and the REST fast path) load the same model from it; serving falls
back to the exported champion when a version's file or the server goes away."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from mlflow import MlflowClient

from src.common.config import FastPaths
from src.common.errors import ModelNotFoundError
from src.common.io import read_json
from src.common.paths import MODEL_DATA, ROOT, SMOKE_CONFIG, get_paths
from src.common.schema import EXAMPLE_FLIGHT, REQUEST_FIELDS
from src.common.servers import stop_server
from src.common.settings import Settings
from src.model.model import LightGBMBooster
from src.serving.loader import load_champion, load_export, load_version
from src.serving.registry import MlflowRegistry
from src.serving.registry_rest import RestRegistry
from src.tracking.store import connect
from tests.conftest import mlflow_server as conftest_server
from tests.integration.support import CFG, assert_is_head, columns, records

pytestmark = pytest.mark.slow
# Both fast paths off: lightgbm.Booster and MlflowClient.
PLAIN_SERVE = CFG.serve.model_copy(
    update={"fast_paths": FastPaths(lightgbm_c_api=False, registry_rest=False)}
)
PLAIN = CFG.model_copy(update={"serve": PLAIN_SERVE})


@pytest.fixture
def mlflow_server(smoke_pipeline, tmp_path):
    log = tmp_path / "server.log"
    backend = f"sqlite:///{tmp_path / 'server.db'}"
    with conftest_server(backend, tmp_path / "artifacts", log) as server:
        yield server
    connect(smoke_pipeline)  # later tests talk to the smoke store again


def run_stage(module: str, env: dict) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--config", str(SMOKE_CONFIG)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_train_register_against_server_then_survive_its_loss(
    smoke_pipeline, mlflow_server, test_split, tmp_path, monkeypatch
):
    url, proc = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("FD_MODELS_DIR", str(tmp_path / "models"))  # processed data is shared
    env = dict(os.environ)
    run_stage("src.train", env)
    run_stage("src.register", env)
    paths = get_paths()
    assert paths.tracking_uri == url

    version = MlflowClient(tracking_uri=url, registry_uri=url).get_model_version_by_alias(
        CFG.registry.model_name, "champion"
    )
    meta = read_json(paths.champion_metadata)
    assert (meta["run_id"], str(meta["version"])) == (version.run_id, version.version)

    served = load_champion(CFG, paths)
    assert (served.source, served.version, served.run_id) == (
        "registry",
        version.version,
        version.run_id,
    )
    assert served.metadata["metrics"]["test_roc_auc"] > 0.5
    assert_is_head(served.metadata["git_commit"])
    assert served.metadata["data_manifest_sha256"] == meta["data_manifest_sha256"]

    # Both registry readers against the server, with both boosters: the same version, the
    # same scores as the export.
    export = load_export(CFG, paths)
    recs = records(test_split.head(500))
    cols = columns(recs)
    expected = export.model.predict_proba(cols)
    rest, plain = RestRegistry(url, Settings()), MlflowRegistry(paths)
    for registry in (rest, plain):
        resolved = registry.resolve_alias(CFG.registry.model_name, "champion")
        assert resolved == (version.version, version.run_id)
        for cfg in (CFG, PLAIN):
            loaded = load_version(cfg, paths, registry, version.version)
            assert loaded.run_id == version.run_id
            np.testing.assert_allclose(
                loaded.model.predict_proba(cols), expected, rtol=0, atol=1e-12
            )

    # What an API worker does on a reload: the version over REST, from the server's proxied
    # artifact store, with no MLflow import; same scores as the export.
    check = (
        "import sys, numpy as np\n"
        "from src.common.config import load_config\n"
        "from src.common.paths import get_paths\n"
        "from src.common.schema import EXAMPLE_FLIGHT, REQUEST_FIELDS\n"
        "from src.serving.loader import load_champion, load_export\n"
        f"cfg = load_config({str(SMOKE_CONFIG)!r})\n"
        "loaded = load_champion(cfg, get_paths())\n"
        "assert loaded.source == 'registry', loaded.source\n"
        "assert 'mlflow' not in sys.modules, 'MLflow imported'\n"
        "assert 'lightgbm' not in sys.modules, 'lightgbm imported'\n"
        "cols = {f: [EXAMPLE_FLIGHT[f]] * 3 for f in REQUEST_FIELDS}\n"
        "export = load_export(cfg, get_paths())\n"
        "assert np.array_equal(loaded.model.predict_proba(cols), export.model.predict_proba(cols))\n"
        "print(loaded.version, loaded.run_id)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [version.version, version.run_id]

    # A version whose logged model has no model file (logged before this format): both
    # readers say so by name, and serving falls back to the export.
    model_id = version.source.removeprefix("models:/")  # the MLflow 3 logged model
    (model_file,) = (tmp_path / "artifacts").rglob(f"{model_id}/**/{MODEL_DATA}")
    model_file.unlink()
    for registry in (rest, plain):
        with pytest.raises(ModelNotFoundError, match="has no model file"):
            registry.load_version(
                CFG.registry.model_name, version.version, LightGBMBooster.from_text
            )
    older = load_champion(CFG, paths)
    assert (older.source, older.version) == ("export", version.version)
    flight = {f: [EXAMPLE_FLIGHT[f]] for f in REQUEST_FIELDS}
    assert np.array_equal(older.model.predict_proba(flight), served.model.predict_proba(flight))

    # The server goes away: the export is served.
    stop_server(proc)
    start = time.monotonic()
    fallback = load_champion(CFG, paths)
    assert (fallback.source, fallback.run_id) == ("export", version.run_id)
    # The only wait left is the REST reader's 5 s socket timeout (a closed loopback port
    # refuses at once); 30 s leaves 6x headroom on a loaded 2-core machine, while MLflow's
    # client retrying a dead server would take minutes.
    assert time.monotonic() - start < 30
