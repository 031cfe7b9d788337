"""The plain path to the registry: MlflowClient, against any tracking store (a local SQLite
file included). The fast path, src/serving/registry_rest.py, answers the same two questions
over REST without importing MLflow; src/serving/loader.py picks one (`registry_for`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from src.common.errors import ModelNotFoundError
from src.common.paths import Paths
from src.model.model import BoosterFromText, FlightDelayModel
from src.tracking.store import LINEAGE_TAGS

if TYPE_CHECKING:
    from mlflow import MlflowClient

# What an alias points at: (version, run id), or None when the alias is not set.
AliasTarget = tuple[str, str | None] | None
# A loaded version: (model, run id, metadata: run metrics, lineage tags, the version's tags).
Version = tuple[FlightDelayModel, str | None, dict[str, Any]]


class RegistryReader(Protocol):
    """The two questions serving asks a registry: MlflowRegistry here, or RestRegistry."""

    def resolve_alias(self, name: str, alias: str) -> AliasTarget: ...

    def load_version(self, name: str, version: str, booster: BoosterFromText) -> Version | None:
        """None when this reader cannot read the version's artifact store."""
        ...


class MlflowRegistry:
    def __init__(self, paths: Paths):
        self.paths = paths

    def _client(self) -> MlflowClient:
        # MLflow is imported on first use only: with the REST fast path a worker never does.
        from mlflow import MlflowClient

        from src.tracking.store import connect

        connect(self.paths)
        return MlflowClient()

    def resolve_alias(self, name: str, alias: str) -> AliasTarget:
        """(version, run id) that `name@alias` points at; None if the alias is not set.
        Raises if the store or the registered model is missing."""
        uri = self.paths.tracking_uri
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
            raise ModelNotFoundError(f"{uri}: no local tracking store")  # never create one
        client = self._client()
        # The model's alias table, not get_model_version_by_alias: that reports a missing
        # alias only as an INVALID_PARAMETER_VALUE error, like a malformed request.
        version = client.get_registered_model(name).aliases.get(alias)
        if version is None:
            return None
        return str(version), client.get_model_version(name, str(version)).run_id

    def load_version(self, name: str, version: str, booster: BoosterFromText) -> Version:
        """(model, run id, metadata: run metrics, lineage tags and the version's tags)."""
        from src.tracking.runs import load_logged_model

        client = self._client()
        mv = client.get_model_version(name, version)
        try:
            model = load_logged_model(f"models:/{name}/{version}", booster)
        except FileNotFoundError:
            raise ModelNotFoundError(no_model_file(name, version)) from None
        run = client.get_run(mv.run_id) if mv.run_id else None
        metrics, tags = (run.data.metrics, run.data.tags) if run else ({}, {})
        return model, mv.run_id, version_metadata(metrics, tags, mv.tags or {})


def version_metadata(
    metrics: dict[str, float], run_tags: dict[str, str], version_tags: dict[str, str]
) -> dict[str, Any]:
    """What the API shows of a registry version (both readers): its run's metrics and
    lineage tags, then the version's own tags (gate evidence)."""
    lineage = {k: v for k, v in run_tags.items() if k in LINEAGE_TAGS}
    return {"metrics": dict(metrics), **lineage, **version_tags}


def no_model_file(name: str, version: str) -> str:
    return (
        f"{name} v{version}: its logged model has no model file (logged before this format, "
        "or not by src.train); train and register it again"
    )
