"""FD_LOG_FORMAT=json on the production server: every line is one JSON object, and each
request has a line with its id, route, status and latency. The id is the caller's
X-Request-ID when it sends one, and the same id is in the answer and the prediction log."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from src.common.schema import EXAMPLE_FLIGHT
from src.serving.prediction_log import read_log
from tests.conftest import gunicorn

pytestmark = pytest.mark.slow


def post(url: str, body: dict, headers: dict | None = None) -> tuple[dict, dict]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read()), dict(r.headers)


def test_json_logs_have_one_line_per_request_with_its_id(smoke_pipeline, tmp_path):
    log = tmp_path / "server.log"
    with gunicorn({"FD_LOG_FORMAT": "json"}, workers=1, log=log) as (base, _):
        traced, headers = post(f"{base}/predict", EXAMPLE_FLIGHT, {"X-Request-ID": "trace-42"})
        fresh, _ = post(f"{base}/predict/batch", {"flights": [EXAMPLE_FLIGHT] * 2})
        odd, odd_headers = post(f"{base}/predict", EXAMPLE_FLIGHT, {"X-Request-ID": "a b\tc"})
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"{base}/no/such/route", timeout=10)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    assert traced["request_id"] == headers["x-request-id"] == "trace-42"
    assert len(fresh["request_id"]) == 32  # made by the API: a uuid4's hex
    assert odd["request_id"] == odd_headers["x-request-id"] != "a b\tc"  # not a plain token
    requests = {e["request_id"]: e for e in lines if e["logger"] == "app.access"}
    assert requests["trace-42"]["route"] == "/predict"
    assert requests["trace-42"]["status"] == 200
    assert requests["trace-42"]["method"] == "POST"
    assert requests["trace-42"]["latency_ms"] > 0
    assert requests[fresh["request_id"]]["route"] == "/predict/batch"
    assert {"route": "unmatched", "status": 404}.items() <= requests.popitem()[1].items()
    assert {"gunicorn.error", "app.access"} <= {e["logger"] for e in lines}  # gunicorn's too
    rows, _ = read_log(smoke_pipeline.predictions)  # flushed at the server's shutdown
    assert (rows["request_id"] == "trace-42").sum() == 1
    assert (rows["request_id"] == fresh["request_id"]).sum() == 2  # the batch's two flights
