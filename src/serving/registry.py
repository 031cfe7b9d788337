"""The plain path to the registry: MlflowClient, against any tracking store (a local SQLite
file included). The fast path, src/serving/registry_rest.py, answers the same two questions
over REST without importing MLflow; src/serving/loader.py picks one (`registry_for`)."""

from __future__ import annotations

from pathlib import Path

from src.common.errors import ModelNotFoundError
from src.common.paths import Paths
from src.tracking.store import LINEAGE_TAGS


class MlflowRegistry:
    def __init__(self, paths: Paths):
        self.paths = paths

    def _client(self):
        # MLflow is imported on first use only: with the REST fast path a worker never does.
        from mlflow import MlflowClient

        from src.tracking.store import connect

        connect(self.paths)
        return MlflowClient()

    def resolve_alias(self, name: str, alias: str) -> tuple[str, str | None] | None:
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

    def load_version(self, name: str, version: str, booster) -> tuple:
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


def version_metadata(metrics: dict, run_tags: dict, version_tags: dict) -> dict:
    """What the API shows of a registry version (both readers): its run's metrics and
    lineage tags, then the version's own tags (gate evidence)."""
    lineage = {k: v for k, v in run_tags.items() if k in LINEAGE_TAGS}
    return {"metrics": dict(metrics), **lineage, **version_tags}


def no_model_file(name: str, version: str) -> str:
    return (
        f"{name} v{version}: its logged model has no model file (logged before this format, "
        "or not by src.train); train and register it again"
    )
