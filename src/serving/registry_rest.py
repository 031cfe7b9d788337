"""Fast path (switch: `serve.fast_paths.registry_rest`): the registry read over MLflow's REST
API with urllib. A worker polls the champion alias every few seconds; importing MLflow for
that costs each worker start-up time and memory it never gives back. It asks the questions
MlflowClient does (src/serving/registry.py) and reads the model file from the server's
proxied artifact store or a local folder."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from src.common.errors import ModelNotFoundError
from src.common.paths import MODEL_DATA
from src.common.settings import Settings
from src.model.model import BoosterFromText, from_bytes
from src.serving.registry import AliasTarget, Version, no_model_file, version_metadata


class RestRegistry:
    def __init__(self, uri: str, settings: Settings, timeout: float = 5):
        self.uri, self.timeout = uri.rstrip("/"), timeout
        self.headers = auth_headers(settings)

    def _get(self, path: str, params: dict[str, str] | None = None) -> bytes:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        request = urllib.request.Request(f"{self.uri}/{path}{query}", headers=self.headers)
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            body: bytes = response.read()
            return body

    def _get_json(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self._get(f"api/2.0/mlflow/{path}", params))
        return answer

    def resolve_alias(self, name: str, alias: str) -> AliasTarget:
        """(version, run id) that `name@alias` points at; None if the alias is not set.
        Raises if the server or the registered model is missing."""
        # The model's alias table, not registered-models/alias: that reports a missing alias
        # only as an INVALID_PARAMETER_VALUE error, like a malformed request.
        model = self._get_registry_json(name, "registered-models/get", {"name": name})
        aliases = {a["alias"]: a["version"] for a in model["registered_model"].get("aliases", [])}
        if alias not in aliases:
            return None
        query = {"name": name, "version": aliases[alias]}
        mv = self._get_registry_json(name, "model-versions/get", query)["model_version"]
        return str(mv["version"]), mv.get("run_id")

    def _get_registry_json(self, name: str, path: str, params: dict[str, str]) -> dict[str, Any]:
        """`_get_json`, an HTTP error raised as ModelNotFoundError naming the model."""
        try:
            return self._get_json(path, params)
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200]
            raise ModelNotFoundError(f"{self.uri}: {name}: HTTP {exc.code} {detail!r}") from None

    def load_version(self, name: str, version: str, booster: BoosterFromText) -> Version | None:
        """(model, run id, metadata) of one version; None when its artifact store is one only
        MLflow's own clients read (S3, ...)."""
        query = {"name": name, "version": version}
        mv = self._get_json("model-versions/get", query)["model_version"]
        data = self._model_file(name, version)
        if data is None:
            return None
        run = {}
        if run_id := mv.get("run_id"):
            run = self._get_json("runs/get", {"run_id": run_id})["run"]["data"]
        metadata = version_metadata(
            {m["key"]: m["value"] for m in run.get("metrics", [])},
            {t["key"]: t["value"] for t in run.get("tags", [])},
            {t["key"]: t["value"] for t in mv.get("tags", [])},
        )
        return from_bytes(data, booster), run_id, metadata

    def _model_file(self, name: str, version: str) -> bytes | None:
        query = {"name": name, "version": version}
        location = self._get_json("model-versions/get-download-uri", query)["artifact_uri"]
        path = urllib.parse.urlparse(location).path
        try:
            if location.startswith("mlflow-artifacts:"):
                artifact = f"{path.strip('/')}/{MODEL_DATA}"
                return self._get(f"api/2.0/mlflow-artifacts/artifacts/{artifact}")
            if location.startswith(("file:", "/")):
                return (Path(path) / MODEL_DATA).read_bytes()
        except (FileNotFoundError, urllib.error.HTTPError) as exc:
            if getattr(exc, "code", 404) != 404:
                raise
            raise ModelNotFoundError(no_model_file(name, version)) from None
        return None


def auth_headers(settings: Settings) -> dict[str, str]:
    """MLflow's own auth variables: a bearer token, or basic auth."""
    if settings.mlflow_tracking_token:
        return {"Authorization": f"Bearer {settings.mlflow_tracking_token.get_secret_value()}"}
    if settings.mlflow_tracking_username:
        password = settings.mlflow_tracking_password
        secret = f"{settings.mlflow_tracking_username}:"
        secret += password.get_secret_value() if password else ""
        return {"Authorization": f"Basic {base64.b64encode(secret.encode()).decode()}"}
    return {}
