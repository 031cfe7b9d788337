"""The registry's REST reader (src/serving/registry_rest.py) against a tiny real HTTP server
on 127.0.0.1 that answers MLflow's documented REST endpoints with canned JSON: the error
paths a serving worker meets (HTTP 404/500, a refused connection, a silent server, a version
without its model file, an unset alias) and the auth header it sends. The happy path against
a real `mlflow server` is tests/integration/test_mlflow_server.py's."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from src.common.errors import ModelNotFoundError
from src.common.paths import MODEL_DATA
from src.common.schema import EXAMPLE_FLIGHT, REQUEST_FIELDS
from src.common.servers import free_port
from src.common.settings import Settings
from src.model.fit import fit_model
from src.model.model import FlightDelayModel, LightGBMBooster, to_bytes
from src.serving.registry_rest import RestRegistry, auth_headers

NAME, RUN_ID = "flight-delay-rest-test", "0123abcd"
API = "/api/2.0/mlflow"
ARTIFACT = "1/models/m-0123/artifacts"  # where the server keeps the version's logged model
Answer = tuple[int, dict | bytes]  # (HTTP status, JSON body or raw bytes)


class CannedMlflow(ThreadingHTTPServer):
    """Answers GET `path` from `routes` (404 for any other path); records each request."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Answer | Callable[[dict], Answer]] = {}
        self.requests: list[tuple[str, dict, dict]] = []  # (path, query, headers)

    def handle_error(self, request, client_address) -> None:
        pass  # a client that gave up waiting (the timeout test): nothing to report

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: CannedMlflow

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.server.requests.append((url.path, query, dict(self.headers)))
        answer = self.server.routes.get(url.path, (404, {"error_code": "ENDPOINT_NOT_FOUND"}))
        status, body = answer(query) if callable(answer) else answer
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def model(processed_slice, raw_slice, smoke_cfg) -> FlightDelayModel:
    """A small real model (logistic: well under a second to fit)."""
    return fit_model("logistic", processed_slice.head(2000), raw_slice["planes"], smoke_cfg)


def registry_answers(model: FlightDelayModel, aliases: dict[str, str]) -> dict:
    """What an MLflow server holding NAME (versions 1-3, `aliases`) answers."""

    def version(query: dict) -> Answer:
        if query.get("version") not in {"1", "2", "3"}:
            return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such version"}
        tags = [{"key": "gate_decision", "value": "promote"}]
        return 200, {"model_version": {"name": NAME, "version": query["version"], "run_id": RUN_ID, "tags": tags}}  # fmt: skip

    run = {
        "data": {
            "metrics": [{"key": "test_roc_auc", "value": 0.71}],
            "tags": [{"key": "config_name", "value": "smoke"}, {"key": "role", "value": "x"}],
        }
    }
    listed = [{"alias": a, "version": v} for a, v in aliases.items()]
    return {
        f"{API}/registered-models/get": (200, {"registered_model": {"name": NAME, "aliases": listed}}),  # fmt: skip
        f"{API}/model-versions/get": version,
        f"{API}/model-versions/get-download-uri": (200, {"artifact_uri": f"mlflow-artifacts:/{ARTIFACT}"}),  # fmt: skip
        f"{API}/runs/get": (200, {"run": run}),
        f"/api/2.0/mlflow-artifacts/artifacts/{ARTIFACT}/{MODEL_DATA}": (200, to_bytes(model)),
    }


@pytest.fixture
def server(model) -> Iterator[CannedMlflow]:
    server = CannedMlflow()
    server.routes = registry_answers(model, {"champion": "3"})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def rest(url: str, timeout: float = 5) -> RestRegistry:
    return RestRegistry(url, Settings(), timeout=timeout)


def scores(model: FlightDelayModel) -> np.ndarray:
    """The example flight 2 h before it leaves (the store's other fields left out: missing)."""
    flight = {**EXAMPLE_FLIGHT, "lead_hours": 2.0}
    return model.predict_proba({f: [flight.get(f)] for f in REQUEST_FIELDS})


def test_alias_and_version_are_read_from_the_server(server, model):
    registry = rest(server.url + "/")  # a trailing slash is harmless
    assert registry.resolve_alias(NAME, "champion") == ("3", RUN_ID)

    loaded, run_id, metadata = registry.load_version(NAME, "3", LightGBMBooster.from_text)

    assert run_id == RUN_ID and np.array_equal(scores(loaded), scores(model))
    # The run's metrics and lineage tags (not its other tags), then the version's tags.
    assert metadata == {
        "metrics": {"test_roc_auc": 0.71},
        "config_name": "smoke",
        "gate_decision": "promote",
    }
    assert all(path.startswith("/api/2.0/") for path, _, _ in server.requests)


def test_an_alias_that_is_not_set_is_none(server):
    assert rest(server.url).resolve_alias(NAME, "challenger") is None


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_for_the_model_names_server_model_and_status(server, status):
    body = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"{NAME} not found"}
    server.routes[f"{API}/registered-models/get"] = (status, body)

    with pytest.raises(ModelNotFoundError) as err:
        rest(server.url).resolve_alias(NAME, "champion")

    message = str(err.value)
    assert message.startswith(f"{server.url}: {NAME}: HTTP {status}")
    assert "RESOURCE_DOES_NOT_EXIST" in message  # the server's own words, shortened


def test_a_version_whose_model_file_is_missing_names_model_and_version(server):
    del server.routes[f"/api/2.0/mlflow-artifacts/artifacts/{ARTIFACT}/{MODEL_DATA}"]  # 404

    with pytest.raises(ModelNotFoundError, match=f"^{NAME} v3: its logged model has no model file"):
        rest(server.url).load_version(NAME, "3", LightGBMBooster.from_text)


def test_a_local_artifact_folder_is_read_and_its_missing_file_named(server, model, tmp_path):
    """A server whose artifact store is a local folder (file:): read from disk."""
    folder = tmp_path / "artifacts"
    server.routes[f"{API}/model-versions/get-download-uri"] = (
        200,
        {"artifact_uri": folder.as_uri()},
    )
    with pytest.raises(ModelNotFoundError, match=f"^{NAME} v3: its logged model has no"):
        rest(server.url).load_version(NAME, "3", LightGBMBooster.from_text)

    (folder / MODEL_DATA).parent.mkdir(parents=True)
    (folder / MODEL_DATA).write_bytes(to_bytes(model))
    loaded, _, _ = rest(server.url).load_version(NAME, "3", LightGBMBooster.from_text)
    assert np.array_equal(scores(loaded), scores(model))


def test_a_server_fault_on_the_model_file_is_not_called_a_missing_file(server):
    """HTTP 500 from the artifact store is the server's trouble, not the version's: it is
    raised as is (the watcher reports it and tries the version again next poll)."""
    server.routes[f"/api/2.0/mlflow-artifacts/artifacts/{ARTIFACT}/{MODEL_DATA}"] = (500, b"oops")

    with pytest.raises(urllib.error.HTTPError) as err:
        rest(server.url).load_version(NAME, "3", LightGBMBooster.from_text)

    assert err.value.code == 500


def test_a_store_only_mlflow_reads_gives_none(server):
    """S3 and friends: None, and the loader falls back to MlflowClient."""
    server.routes[f"{API}/model-versions/get-download-uri"] = (
        200,
        {"artifact_uri": "s3://bucket/1/models/m-0123/artifacts"},
    )
    assert rest(server.url).load_version(NAME, "3", LightGBMBooster.from_text) is None


def test_an_unknown_version_is_an_http_error(server):
    with pytest.raises(urllib.error.HTTPError) as err:
        rest(server.url).load_version(NAME, "9", LightGBMBooster.from_text)
    assert err.value.code == 404


def test_a_refused_connection_fails_at_once():
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens: refused
    start = time.monotonic()
    with pytest.raises(urllib.error.URLError) as err:
        rest(url).resolve_alias(NAME, "champion")
    assert isinstance(err.value.reason, ConnectionRefusedError)
    assert time.monotonic() - start < 5


def test_a_silent_server_times_out_within_the_timeout(server):
    answered = threading.Event()

    def slow(query: dict) -> Answer:
        answered.wait(10)  # released when the test ends
        return 200, {}

    server.routes[f"{API}/registered-models/get"] = slow
    start = time.monotonic()
    try:
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            rest(server.url, timeout=0.5).resolve_alias(NAME, "champion")
        assert time.monotonic() - start < 5
    finally:
        answered.set()


# ------------------------------------------------------------------------- auth header
TOKEN, USER, PASSWORD = "t0ken", "ana", "s3cret"


def basic(secret: str) -> str:
    return f"Basic {base64.b64encode(secret.encode()).decode()}"


@pytest.mark.parametrize(
    ("env", "header"),
    [
        ({}, None),
        ({"MLFLOW_TRACKING_TOKEN": TOKEN}, f"Bearer {TOKEN}"),
        ({"MLFLOW_TRACKING_USERNAME": USER, "MLFLOW_TRACKING_PASSWORD": PASSWORD}, basic(f"{USER}:{PASSWORD}")),  # fmt: skip
        ({"MLFLOW_TRACKING_USERNAME": USER}, basic(f"{USER}:")),
        # Both set: the token wins, as in MLflow's own client.
        ({"MLFLOW_TRACKING_TOKEN": TOKEN, "MLFLOW_TRACKING_USERNAME": USER}, f"Bearer {TOKEN}"),
    ],
)
def test_the_auth_header_comes_from_mlflows_variables(env, header, server, monkeypatch):
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    settings = Settings()
    assert auth_headers(settings) == ({"Authorization": header} if header else {})

    RestRegistry(server.url, settings).load_version(NAME, "3", LightGBMBooster.from_text)

    sent = [headers.get("Authorization") for _, _, headers in server.requests]
    assert len(sent) == 4 and set(sent) == {header}  # every request, the artifact's too
