"""train + register against a real `mlflow server` on a free loopback port, its backend store
SQLite or PostgreSQL (every test runs on both: the same assertions); both registry readers
load the same model from it; the gate, a new champion and a rollback go through it, each
served by a running API (hot reload); serving falls back to the exported champion when a
version's file or the server goes away.

The tests of one backend share its server, store and trained runs (module scope), in the
order below: the last one takes the server away."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from src import register
from src.common.config import FastPaths
from src.common.errors import ModelNotFoundError
from src.common.io import read_json
from src.common.paths import MODEL_DATA, ROOT, SMOKE_CONFIG, get_paths
from src.common.schema import EXAMPLE_FLIGHT, REQUEST_FIELDS
from src.common.servers import http_json, stop_server
from src.common.settings import Settings
from src.model.model import LightGBMBooster
from src.registry.history import read_history
from src.registry.versions import CHALLENGER, CHAMPION, alias_version
from src.serving.loader import load_champion, load_export, load_version
from src.serving.registry import MlflowRegistry
from src.serving.registry_rest import RestRegistry
from src.tracking.store import connect
from tests.conftest import gunicorn
from tests.conftest import mlflow_server as conftest_server
from tests.integration.monitoring_support import wait_for_value
from tests.integration.support import ARGS, CFG, assert_is_head, columns, records, runs_of
from tests.integration.test_registry import explained_by_the_rule

pytestmark = pytest.mark.slow
NAME = CFG.registry.model_name
# Both fast paths off: lightgbm.Booster and MlflowClient.
PLAIN_SERVE = CFG.serve.model_copy(
    update={"fast_paths": FastPaths(lightgbm_c_api=False, registry_rest=False)}
)
PLAIN = CFG.model_copy(update={"serve": PLAIN_SERVE})
# Both on (the production profile's): the C API and the registry over REST.
FAST_SERVE = CFG.serve.model_copy(
    update={"fast_paths": FastPaths(lightgbm_c_api=True, registry_rest=True)}
)
FAST = CFG.model_copy(update={"serve": FAST_SERVE})
RELOAD_S = 60  # for a running API to serve a moved alias (it polls every second)


@dataclass(frozen=True)
class Tracking:
    """A tracking server with the smoke runs trained into it and the champion registered."""

    backend: str  # "sqlite" or "postgresql"
    url: str
    proc: subprocess.Popen
    artifacts: Path
    # SQL on the backend store itself, not through MLflow: what the server really wrote.
    query: Callable[[str], list[tuple]]


def sqlite_query(db: Path) -> Callable[[str], list[tuple]]:
    def query(sql: str) -> list[tuple]:
        with closing(sqlite3.connect(db)) as conn:
            return conn.execute(sql).fetchall()

    return query


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def tracking(request, smoke_pipeline, tmp_path_factory):
    """`mlflow server` on the backend, `python -m src.train` and `src.register` run against
    it; MLFLOW_TRACKING_URI points at it, and FD_MODELS_DIR at a folder of its own (the
    processed data is shared), while the module's tests run."""
    tmp = tmp_path_factory.mktemp(f"tracking-{request.param}")
    if request.param == "sqlite":
        uri, query = f"sqlite:///{tmp / 'server.db'}", sqlite_query(tmp / "server.db")
    else:
        pg = request.getfixturevalue("postgres")  # skipped (or failed in CI) when missing
        uri, query = pg.uri(), pg.query
    artifacts, log = tmp / "artifacts", tmp / "server.log"
    with (
        conftest_server(uri, artifacts, log) as (url, proc),
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("MLFLOW_TRACKING_URI", url)
        mp.setenv("FD_MODELS_DIR", str(tmp / "models"))
        env = dict(os.environ)
        run_stage("src.train", env)
        run_stage("src.register", env)
        yield Tracking(request.param, url, proc, artifacts, query)
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


def stored_aliases(tracking: Tracking) -> dict[str, int]:
    """NAME's aliases as the backend store's own table holds them."""
    sql = f"SELECT alias, version FROM registered_model_aliases WHERE name = '{NAME}'"
    return dict(tracking.query(sql))


def test_the_store_is_the_backend(tracking, request):
    """The server wrote into this backend, no other: MLflow's schema and the registered
    version are in its tables, read with its own driver."""
    assert tracking.query("SELECT count(*) FROM alembic_version") == [(1,)]
    versions = tracking.query(f"SELECT version FROM model_versions WHERE name = '{NAME}'")
    assert versions == [(1,)]
    assert stored_aliases(tracking) == {CHAMPION: 1}
    if tracking.backend == "postgresql":
        pg = request.getfixturevalue("postgres")
        ((server, database, user),) = pg.query("SELECT version(), current_database(), user")
        assert server.startswith(f"PostgreSQL {pg.major}.")
        assert (database, user) == ("mlflow", "mlflow")


def test_train_register_against_server(tracking, test_split):
    url, env = tracking.url, dict(os.environ)
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
        "from src.common.config import load_config, with_fast_paths\n"
        "from src.common.settings import Settings\n"
        "from src.common.paths import get_paths\n"
        "from src.common.schema import EXAMPLE_FLIGHT, REQUEST_FIELDS\n"
        "from src.serving.loader import load_champion, load_export\n"
        f"cfg = with_fast_paths(load_config({str(SMOKE_CONFIG)!r}), Settings())\n"
        "loaded = load_champion(cfg, get_paths())\n"
        "assert loaded.source == 'registry', loaded.source\n"
        "assert 'mlflow' not in sys.modules, 'MLflow imported'\n"
        "assert 'lightgbm' not in sys.modules, 'lightgbm imported'\n"
        "cols = {f: [EXAMPLE_FLIGHT.get(f)] * 3 for f in REQUEST_FIELDS}\n"
        "export = load_export(cfg, get_paths())\n"
        "assert np.array_equal(loaded.model.predict_proba(cols), export.model.predict_proba(cols))\n"
        "print(loaded.version, loaded.run_id)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=ROOT,
        env={**env, "FD_FAST_PATHS": "lightgbm_c_api,registry_rest"},  # the production profile
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [version.version, version.run_id]


def test_gate_new_champion_and_rollback_are_served_by_a_running_api(tracking, tmp_path):
    """An API (gunicorn, one worker, polling every second) serves from the server while the
    registry moves: the baseline as @challenger (scored in the shadow), rejected by the gate;
    the baseline as a new @champion; a rollback to the first. It serves each move."""
    client, paths = MlflowClient(tracking_uri=tracking.url, registry_uri=tracking.url), get_paths()
    first = alias_version(client, NAME, CHAMPION)
    baseline = runs_of(client, "baseline")[0].info.run_id  # logistic: lower test AUC
    config = tmp_path / "serve.yml"
    serve = CFG.serve.model_copy(update={"reload_seconds": 1})
    config.write_text(
        yaml.safe_dump(CFG.model_copy(update={"serve": serve}).model_dump(mode="json"))
    )
    env = {
        "FD_CONFIG": str(config),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",  # for any MlflowClient call in the worker
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    log = tmp_path / "gunicorn.log"

    def served_after(what: str, expected: tuple) -> None:
        """Wait until /model reports (champion version, shadow version) = `expected`."""
        wait_for_value(lambda: serving(base), expected, RELOAD_S, f"{what}; see {log}")

    with gunicorn(env, workers=1, log=log) as (base, _):
        served_after("the first champion", (first, None))
        assert register.main([*ARGS, "--alias", "challenger", "--run-id", baseline]) == 0
        challenger = alias_version(client, NAME, CHALLENGER)
        served_after("@challenger in the shadow", (first, challenger))

        assert register.main([*ARGS, "--gate", "--window", "3"]) == 0
        assert alias_version(client, NAME, CHAMPION) == first  # rejected: not promoted
        assert alias_version(client, NAME, CHALLENGER) is None
        tags = client.get_model_version(NAME, challenger).tags
        assert tags["gate.promote"] == "False" and tags["gate.window"] == "2013-03"
        assert tags["gate.champion_version"] == first
        assert not explained_by_the_rule(tags)
        served_after("@challenger removed by the gate", (first, None))

        assert register.main([*ARGS, "--run-id", baseline]) == 0  # a new champion
        second = alias_version(client, NAME, CHAMPION)
        assert second not in (first, challenger)
        served_after("the new champion", (second, None))
        assert read_json(paths.champion_metadata)["version"] == int(second)

        assert register.main([*ARGS, "--rollback"]) == 0
        assert alias_version(client, NAME, CHAMPION) == first
        served_after("the champion rolled back to", (first, None))
        assert read_json(paths.champion_metadata)["version"] == int(first)
        model = http_json(f"{base}/model")[1]
        assert model["source"] == "registry" and model["registry"]["reachable"] is True
        reloads = [(r["from"], r["to"]) for r in model["registry"]["reloads"]]
        assert reloads == [(None, first), (first, second), (second, first)]

    history = read_history(paths.alias_history(NAME))
    assert [(e["event"], e["alias"], e["version"]) for e in history] == [
        ("register", CHAMPION, first),
        ("register", CHALLENGER, challenger),
        ("reject", CHALLENGER, challenger),
        ("register", CHAMPION, second),
        ("rollback", CHAMPION, first),
    ]
    # What the backend store itself holds after these moves (SQL, not MLflow).
    assert stored_aliases(tracking) == {CHAMPION: int(first)}
    evidence = f"""
        SELECT key, value FROM model_version_tags
        WHERE name = '{NAME}' AND version = {int(challenger)} AND key LIKE 'gate.%'"""
    gate_tags = {k: v for k, v in tags.items() if k.startswith("gate.")}
    assert dict(tracking.query(evidence)) == gate_tags


def serving(base: str) -> tuple:
    """(champion version, shadow version) as the API's /model reports them."""
    status, body = http_json(f"{base}/model")
    return (body.get("version"), body.get("shadow_version")) if status == 200 else status


def test_served_from_the_export_when_a_version_file_or_the_server_is_gone(tracking):
    """Takes the server away: the last test of its backend."""
    url, paths = tracking.url, get_paths()
    version = MlflowClient(tracking_uri=url, registry_uri=url).get_model_version_by_alias(
        NAME, CHAMPION
    )
    served = load_champion(FAST, paths)
    assert (served.source, served.version) == ("registry", version.version)
    rest, plain = RestRegistry(url, Settings()), MlflowRegistry(paths)
    # A version whose logged model has no model file (logged before this format): both
    # readers say so by name, and serving falls back to the export.
    model_id = version.source.removeprefix("models:/")  # the MLflow 3 logged model
    (model_file,) = tracking.artifacts.rglob(f"{model_id}/**/{MODEL_DATA}")
    model_file.unlink()
    for registry in (rest, plain):
        with pytest.raises(ModelNotFoundError, match="has no model file"):
            registry.load_version(
                CFG.registry.model_name, version.version, LightGBMBooster.from_text
            )
    older = load_champion(FAST, paths)
    assert (older.source, older.version) == ("export", version.version)
    flight = {f: [EXAMPLE_FLIGHT.get(f)] for f in REQUEST_FIELDS}  # the store's fields missing
    assert np.array_equal(older.model.predict_proba(flight), served.model.predict_proba(flight))

    # The server goes away: the export is served.
    stop_server(tracking.proc)
    start = time.monotonic()
    fallback = load_champion(FAST, paths)
    assert (fallback.source, fallback.run_id) == ("export", version.run_id)
    # The only wait left is the REST reader's 5 s socket timeout (a closed loopback port
    # refuses at once); 30 s leaves 6x headroom on a loaded 2-core machine, while MLflow's
    # client retrying a dead server would take minutes.
    assert time.monotonic() - start < 30
