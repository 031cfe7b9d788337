"""Every environment variable goes through Settings (src/common/settings.py), read when it is
called; the path catalog and the config choice (stages and API) follow from it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from src import cycle, drift, predict, train
from src.common.config import load_config
from src.common.errors import PipelineError
from src.common.io import write_json
from src.common.paths import DEFAULT_CONFIG, ROOT, SMOKE_CONFIG, Paths, get_paths
from src.common.settings import Settings, SettingsError
from src.serving.loader import serving_config

FOLDERS = {"data": "FD_DATA_DIR", "models": "FD_MODELS_DIR"}
FOLDERS |= {"reports": "FD_REPORTS_DIR", "mlflow": "FD_MLFLOW_DIR"}


@pytest.fixture
def env(monkeypatch):
    """No FD_* or MLFLOW_* variable set (the session sets some); returns monkeypatch."""
    for key in list(os.environ):
        if key.startswith(("FD_", "MLFLOW_")):
            monkeypatch.delenv(key)
    return monkeypatch


# ---------------------------------------------------------------- Settings
def test_variables_are_read_when_settings_is_called(env):
    assert Settings().workers == 2  # the default

    env.setenv("FD_WORKERS", "3")
    env.setenv("FD_API_KEY", "s3cret")
    env.setenv("FD_CONFIG", str(SMOKE_CONFIG))
    first = Settings()
    env.setenv("FD_WORKERS", "5")

    assert first.workers == 3 and Settings().workers == 5  # a new call sees the new value
    assert first.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(first)  # a SecretStr: never printed in logs
    assert first.config == SMOKE_CONFIG


def test_empty_values_count_as_unset(env):
    """`export FD_API_KEY=` must not mean "the key is the empty string"."""
    for var in ("FD_API_KEY", "FD_CONFIG", "FD_DATA_DIR", "FD_WORKERS", "MLFLOW_TRACKING_URI"):
        env.setenv(var, "")

    settings = Settings()

    assert settings.api_key is None and settings.config is None and settings.data_dir is None
    assert settings.workers == 2 and settings.mlflow_tracking_uri is None


def test_other_tools_variables_keep_their_names(env):
    env.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    env.setenv("PROMETHEUS_MULTIPROC_DIR", "/tmp/prom")
    env.setenv("FD_MLFLOW_TRACKING_URI", "http://wrong:1")  # no FD_ prefix for these

    settings = Settings()

    assert settings.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert settings.prometheus_multiproc_dir == Path("/tmp/prom")
    assert get_paths(settings).tracking_uri == "http://127.0.0.1:5000"


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        ("FD_LOG_FORMAT", "xml", "FD_LOG_FORMAT='xml': Input should be 'text' or 'json'"),
        ("FD_WORKERS", "0", "FD_WORKERS='0': Input should be greater than or equal to 1"),
        ("FD_TIMEOUT", "1m", "FD_TIMEOUT='1m': Input should be a valid integer, unable to"),
        ("FD_FAST_PATHS", "c_api", "FD_FAST_PATHS='c_api': Input should be 'lightgbm_c_api', "),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(env, variable, value, line):
    env.setenv(variable, value)
    with pytest.raises(SettingsError) as err:
        Settings()
    assert str(err.value).startswith(line) and "\n" not in str(err.value)


@pytest.mark.parametrize("stage", [drift, predict, cycle, train], ids=lambda s: s.__name__)
def test_a_stage_given_a_bad_value_exits_2_in_one_line(env, capsys, stage):
    """Cron reads exit code 1 of drift, predict and the cycle as a result: a bad setting is
    2 (for every stage, as argparse gives a bad flag), with no traceback."""
    env.setenv("FD_LOG_FORMAT", "xml")
    assert stage.main([]) == 2
    err = capsys.readouterr().err
    name = stage.__name__.removeprefix("src.")
    assert err == f"{name}: FD_LOG_FORMAT='xml': Input should be 'text' or 'json'\n"


# ---------------------------------------------------------------- paths
def catalog(paths: Paths) -> dict[str, object]:
    """Every path the catalog gives (properties, and methods called with sample names)."""
    return {
        "raw": paths.raw,
        "snapshot": paths.snapshot("s"),
        "snapshot_manifest": paths.snapshot_manifest("s"),
        "processed": paths.processed,
        "processed_file": paths.processed_file("train"),
        "processed_manifest": paths.processed_manifest,
        "features": paths.features,
        "features_file": paths.features_file("weather"),
        "features_manifest": paths.features_manifest,
        "online_store": paths.online_store,
        "predictions": paths.predictions,
        "champion": paths.champion,
        "champion_model": paths.champion_model,
        "champion_metadata": paths.champion_metadata,
        "champion_config": paths.champion_config,
        "alias_history": paths.alias_history("m"),
        "model_card": paths.model_card("m"),
        "model_card_data": paths.model_card_data("m", "slices"),
        "drift_report": paths.drift_report("b"),
        "drift_summary": paths.drift_summary("b"),
        "drift_history": paths.drift_history,
        "loop": paths.loop,
        "loop_file": paths.loop_file("report.md"),
        "outcomes": paths.outcomes,
        "cycle_file": paths.cycle_file("2013-10-31", "summary.json"),
        "bench": paths.bench,
        "artifacts": paths.artifacts,
        "tracking_uri": paths.tracking_uri,
        "loop_sandbox.data": paths.loop_sandbox("r").data,
        "loop_sandbox.reports": paths.loop_sandbox("r").reports,
        "loop_sandbox.models": paths.loop_sandbox("r").models,
        "loop_sandbox.mlflow": paths.loop_sandbox("r").mlflow,
    }


def test_catalog_lists_every_path_of_paths():
    """Keeps `catalog` above complete, so the relocation test covers every path."""
    public = {n for n in vars(Paths) if not n.startswith("_")} - set(FOLDERS) - {"tracking"}
    assert public == {name.split(".")[0] for name in catalog(get_paths())}


def test_get_paths_relocates_every_folder(env, tmp_path):
    for field, var in FOLDERS.items():
        env.setenv(var, str(tmp_path / f"my-{field}"))

    paths = get_paths()

    for field in FOLDERS:
        assert getattr(paths, field) == tmp_path / f"my-{field}"
    for name, path in catalog(paths).items():
        assert str(tmp_path) in str(path), name
        assert not str(path).startswith(str(ROOT)), name  # nothing left in the repo
    assert paths.tracking_uri == f"sqlite:///{tmp_path / 'my-mlflow' / 'mlflow.db'}"
    assert paths.loop_sandbox("r").tracking is None  # the loop never writes the user's store


def test_unset_folders_are_the_repo_folders(env):
    paths = get_paths()
    assert (paths.data, paths.models) == (ROOT / "data", ROOT / "models")
    assert (paths.reports, paths.mlflow) == (ROOT / "reports", ROOT / "mlruns")


# ---------------------------------------------------------------- which config
def test_stages_load_fd_config_else_the_default(env):
    assert load_config().name == "default"
    env.setenv("FD_CONFIG", str(SMOKE_CONFIG))
    assert load_config().name == "smoke"
    assert load_config(DEFAULT_CONFIG).name == "default"  # --config beats FD_CONFIG


@pytest.fixture
def exported(paths, smoke_cfg) -> Paths:
    """An export whose config.json is the smoke config under another name (so a test can
    tell it from configs/smoke.yml)."""
    write_json(paths.champion_config, smoke_cfg.model_dump() | {"name": "exported"})
    return paths


def test_serving_config_fd_config_wins(env, exported):
    env.setenv("FD_CONFIG", str(DEFAULT_CONFIG))
    assert serving_config(Settings(), exported).name == "default"


def test_serving_config_else_the_exported_champions(env, exported, smoke_cfg):
    cfg = serving_config(Settings(), exported)
    assert cfg.name == "exported"
    assert cfg.model_dump() == smoke_cfg.model_dump() | {"name": "exported"}


def test_serving_config_else_the_default(env, paths):
    assert not paths.champion_config.exists()
    assert serving_config(Settings(), paths).name == "default"


def test_serving_config_names_a_broken_export(env, exported):
    broken = load_config(SMOKE_CONFIG).model_dump() | {"serve": {"threshold": 2}}
    write_json(exported.champion_config, broken)
    with pytest.raises(PipelineError, match="field 'serve.threshold'") as err:
        serving_config(Settings(), exported)
    assert str(exported.champion_config) in str(err.value)
