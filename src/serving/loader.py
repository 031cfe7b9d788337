"""Load the model to serve: the export in models/champion/ (written by `python -m
src.register`, so serving needs no server), or a registry version. `LoadedModel` is the one
record of where a served model came from.

Two fast paths are chosen here, each by its switch in `serve.fast_paths`: the LightGBM C API
(`booster_for`) and the registry over REST (`registry_for`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from src.common.config import Config, config_from_dict, load_config, with_fast_paths
from src.common.errors import ModelNotFoundError
from src.common.io import read_json
from src.common.paths import DEFAULT_CONFIG, Paths
from src.common.settings import Settings
from src.model import model as model_file
from src.model.model import BoosterFromText, FlightDelayModel, LightGBMBooster
from src.serving.registry import MlflowRegistry, RegistryReader

log = logging.getLogger(__name__)
# The roles a worker serves a model in: the champion answers requests; the challenger, when
# the registry's @challenger is set, scores them in its shadow (src/serving/prediction_log.py)
# and changes no answer. The shadow's alias is the role's name: src/registry/versions.py moves
# @challenger under the same name, which serving may not import (the layers in
# pyproject.toml); tests/unit/test_shadow.py keeps the two names equal.
CHAMPION, CHALLENGER = "champion", "challenger"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class LoadedModel:
    model: FlightDelayModel
    name: str
    version: str
    alias: str
    source: str  # "registry" | "export"
    run_id: str | None
    metadata: dict[str, Any]  # metrics, lineage tags, the version's tags
    loaded_at: str = field(default_factory=utc_now)


def booster_for(cfg: Config) -> BoosterFromText:
    """What builds a LightGBM estimator from model text: the C API (fast, when switched on
    and its library loads on this platform) or lightgbm.Booster (plain)."""
    if cfg.serve.fast_paths.lightgbm_c_api:
        from src.serving import lgb_capi

        problem = lgb_capi.available()
        if problem is None:
            return lgb_capi.CApiBooster
        log.warning("LightGBM C API fast path off (%s): serving with lightgbm.Booster", problem)
    return LightGBMBooster.from_text


def registry_for(cfg: Config, paths: Paths, settings: Settings) -> RegistryReader:
    """The REST reader (fast) for an http(s) tracking server, else MlflowClient."""
    uri = paths.tracking_uri
    if cfg.serve.fast_paths.registry_rest and uri.startswith(("http://", "https://")):
        from src.serving.registry_rest import RestRegistry

        return RestRegistry(uri, settings)
    return MlflowRegistry(paths)


def load_export(cfg: Config, paths: Paths) -> LoadedModel:
    """models/champion/: no MLflow import, about a second to load."""
    if not paths.champion_metadata.is_file():
        raise ModelNotFoundError(
            f"{paths.champion_metadata}: no exported champion; run `python -m src.register`"
        )
    meta = read_json(paths.champion_metadata)
    model = model_file.load(paths.champion_model, booster_for(cfg))
    return LoadedModel(
        model,
        meta["name"],
        str(meta["version"]),
        meta.get("alias", "champion"),
        "export",
        meta.get("run_id"),
        meta,
    )


def load_version(
    cfg: Config, paths: Paths, registry: RegistryReader, version: str, alias: str | None = None
) -> LoadedModel:
    """One registered version, by number, so a moving alias cannot race the load. `alias`:
    the one it was found under (default: the config's, the champion's)."""
    name = cfg.registry.model_name
    found = registry.load_version(name, version, booster_for(cfg))
    if found is None:  # an artifact store only MLflow's own clients read (S3, ...)
        found = MlflowRegistry(paths).load_version(name, version, booster_for(cfg))
    model, run_id, metadata = found
    alias = alias or cfg.registry.alias
    return LoadedModel(model, name, version, alias, "registry", run_id, metadata)


def load_champion(cfg: Config, paths: Paths, settings: Settings | None = None) -> LoadedModel:
    """The registry's @champion when the registry answers, else the export."""
    registry = registry_for(cfg, paths, settings or Settings())
    name, alias = cfg.registry.model_name, cfg.registry.alias
    try:
        target = registry.resolve_alias(name, alias)
        if target is None:
            raise ModelNotFoundError(f"{name}@{alias}: no such alias in the registry")
        loaded = load_version(cfg, paths, registry, target[0])
    except Exception as exc:  # any registry failure: serve the export instead
        log.warning("registry unavailable (%s); loading %s", str(exc)[:200], paths.champion)
        loaded = load_export(cfg, paths)
    log.info("serving %s v%s from %s", loaded.name, loaded.version, loaded.source)
    return loaded


def serving_config(settings: Settings, paths: Paths) -> Config:
    """The config the API serves with, its fast paths as FD_FAST_PATHS sets them: FD_CONFIG
    when set; else the one the exported champion was registered with (so whichever of `make
    smoke` or `make pipeline` ran last, its export serves, in a container image too); else
    configs/default.yml."""
    if settings.config is not None:
        cfg = load_config(settings.config)
    elif paths.champion_config.is_file():
        cfg = config_from_dict(read_json(paths.champion_config), str(paths.champion_config))
    else:
        cfg = load_config(DEFAULT_CONFIG)
    return with_fast_paths(cfg, settings)
