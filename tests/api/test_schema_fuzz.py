"""schemathesis against the app's own OpenAPI schema (FastAPI's, from the routes' models), on
a real server on loopback: no input the schema allows (or nearly allows) may cause a 5xx,
and every 4xx is JSON. Every operation in the schema is fuzzed, POST /predict/batch
included (its body schema is BatchRequest, which FastAPI now parses itself), and GET
/flights on an online store fed with a day of real events.

Randomized by hand; CI sets HYPOTHESIS_PROFILE=ci (tests/conftest.py: derandomize), so a CI
failure reproduces locally with the same variable."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from src.data.validate import read_snapshot
from src.featurestore.offline import build_views
from src.featurestore.online import feed
from src.featurestore.online_sqlite import SQLiteStore
from tests.api.support import CFG
from tests.conftest import gunicorn

pytestmark = pytest.mark.slow
MAX_EXAMPLES = 40
MUST_FUZZ = {"POST /predict", "POST /predict/batch", "GET /model", "GET /ready", "GET /health"}
MUST_FUZZ |= {"GET /flights/{carrier}/{number}/{day}"}


@pytest.fixture(scope="module")
def server(smoke_pipeline, tmp_path_factory):
    data = tmp_path_factory.mktemp("fuzz-data")
    with SQLiteStore(data / "online" / "features.sqlite") as store:
        views = build_views(read_snapshot(smoke_pipeline, CFG.snapshot))
        feed(store, views, start="2013-06-08T00:00Z", until="2013-06-15T12:00Z")
    with gunicorn({"FD_DATA_DIR": str(data)}, workers=1) as (base, _):
        yield base


# Driven through hypothesis directly: schemathesis' pytest plugin (from_fixture) breaks
# on this pytest version ("'Function' object has no attribute '_nodeid'").
def test_no_5xx_and_json_errors(server):
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    operations = {
        f"{op.method.upper()} {op.path}": op
        for op in (result.ok() for result in schema.get_all_operations())
    }
    assert set(operations) >= MUST_FUZZ
    batch = operations["POST /predict/batch"].definition.raw["requestBody"]
    assert batch["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BatchRequest"
    }
    statuses = {name: fuzz(server, name, op) for name, op in operations.items()}

    # Every operation really was called, and the batch route with bodies of its schema
    # (not only empty or foreign ones).
    assert all(counts.total() > 0 for counts in statuses.values()), statuses
    assert statuses["POST /predict/batch"]["shaped bodies"] > 0, statuses["POST /predict/batch"]


def fuzz(server: str, name: str, operation) -> Counter:
    """MAX_EXAMPLES generated cases of one operation against the server: the answers'
    statuses counted (and, for the batch route, bodies holding `flights` or `columns`)."""
    statuses: Counter = Counter()

    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case):
        response = case.call(base_url=server, timeout=30)
        statuses[response.status_code] += 1
        if name == "POST /predict/batch" and isinstance(case.body, dict):
            statuses["shaped bodies"] += bool({"flights", "columns"} & set(case.body))
        assert response.status_code < 500, (case.path, response.status_code, response.text[:500])
        if response.status_code >= 400:
            (content_type,) = response.headers["content-type"]  # schemathesis: lists
            assert content_type.startswith("application/json")
            assert "detail" in response.json()

    check()
    return statuses
