"""Issue 23, items 1-5: hostile input on the /predict* routes, on the plain path and on the
batch fast path (serve.fast_paths.batch_parse): only JSON bodies are read (415), the API key
is checked before the body is read (401), booleans are never numbers, an origin the model
does not know is refused, and a 422 stays small whatever the body."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from app.main import create_app, default_service
from app.schemas import MAX_ERRORS
from src.common.schema import API_REQUEST_FIELDS, EXAMPLE_FLIGHT
from tests.api.support import cfg_with

KEY = "s3cret-key"
JSON = {"content-type": "application/json"}
SECOND = {**EXAMPLE_FLIGHT, "hour": 7, "carrier": "DL", "origin": "JFK"}


def columns_of(flights: list[dict]) -> dict[str, list]:
    return {f: [r.get(f) for r in flights] for f in API_REQUEST_FIELDS}


def bodies(flight: dict) -> dict[str, tuple[str, dict]]:
    """`flight` sent alone, as the second of two records and as the second of two columns."""
    return {
        "one": ("/predict", flight),
        "records": ("/predict/batch", {"flights": [SECOND, flight]}),
        "columns": ("/predict/batch", {"columns": columns_of([SECOND, flight])}),
    }


def app_on(path: str):
    return create_app(default_service, cfg_with(fast_paths={"batch_parse": path == "fast"}))


@pytest.fixture(scope="module", params=["plain", "fast"])
def client(smoke_pipeline, request):
    """The API on the plain path, then with the batch fast path on."""
    with TestClient(app_on(request.param)) as c:
        yield c


@pytest.fixture(scope="module", params=["plain", "fast"])
def keyed(smoke_pipeline, request):
    """The same with FD_API_KEY set (read by the lifespan)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FD_API_KEY", KEY)
        with TestClient(app_on(request.param)) as c:
            yield c


def post(client, path: str, body, headers=JSON, raw: bytes | None = None):
    content = json.dumps(body).encode() if raw is None else raw
    return client.post(path, content=content, headers=headers)


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
    + ["text/json", "application/jsonl", "application/problem+json"],
)
@pytest.mark.parametrize("shape", ["one", "records", "columns"])
def test_only_a_body_declared_json_is_read(client, shape, content_type):
    """Item 1: a page may send text/plain or a form to any origin without a preflight; the
    fast path scored such a batch (200), the plain routes answered 422."""
    path, body = bodies(EXAMPLE_FLIGHT)[shape]
    headers = {} if content_type is None else {"content-type": content_type}
    r = post(client, path, body, headers)
    assert r.status_code == 415, r.text
    assert r.json() == {"detail": "the body must be JSON, sent as Content-Type: application/json"}
    for declared in ("application/json", "Application/JSON; charset=utf-8"):
        assert post(client, path, body, {"content-type": declared}).status_code == 200


def streamed(read: list):
    """A streamed body that notes when the app asks for it."""
    read.append(True)
    yield b'{"flights": ['


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_the_key_is_checked_before_the_body_is_read(keyed, path):
    """Item 2: with FD_API_KEY set, `{` without a key got 422 (the body parsed first)."""
    flight_body = bodies(EXAMPLE_FLIGHT)["one" if path == "/predict" else "records"][1]
    valid = json.dumps(flight_body).encode()
    for raw in (b"{", valid + b" junk", valid):
        for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}):
            for content_type in ("application/json", "text/plain"):
                r = post(keyed, path, None, {**headers, "content-type": content_type}, raw)
                assert r.status_code == 401, (raw[:20], headers, content_type, r.text)
                assert r.json() == {"detail": "missing or wrong X-API-Key"}
    read: list = []
    assert keyed.post(path, content=streamed(read), headers=JSON).status_code == 401
    assert read == []  # never asked for
    with_key = {**JSON, "X-API-Key": KEY}
    assert keyed.post(path, content=streamed(read), headers=with_key).status_code == 422
    assert read == [True]
    assert post(keyed, path, None, with_key, b"{").status_code == 422
    assert (
        post(keyed, path, None, {**with_key, "content-type": "text/plain"}, valid).status_code
        == 415
    )
    assert post(keyed, path, None, with_key, valid).status_code == 200


@pytest.mark.parametrize("field", ["distance", "hour", "temp", "flight"])
@pytest.mark.parametrize("shape", ["one", "records", "columns"])
def test_a_boolean_is_not_a_number(client, shape, field):
    """Item 3: `"distance": true` was scored as 1."""
    path, body = bodies({**EXAMPLE_FLIGHT, field: True})[shape]
    r = post(client, path, body)
    assert r.status_code == 422, r.text
    assert [e["loc"][-1] if shape != "columns" else e["loc"][-2] for e in r.json()["detail"]] == [
        field
    ]


@pytest.mark.parametrize("shape", ["one", "records", "columns"])
def test_text_written_as_a_number_is_scored_as_that_number(client, shape):
    """Item 3: one rule for text, the batch job's too (tests/unit/test_batch_rows.py)."""
    path, as_text = bodies({**EXAMPLE_FLIGHT, "distance": "7.19e2", "temp": "78.1"})[shape]
    _, as_numbers = bodies(EXAMPLE_FLIGHT)[shape]
    answers = [post(client, path, body).json() for body in (as_text, as_numbers)]
    for a in answers:
        a.pop("request_id")
    assert answers[0] == answers[1]
    path, padded = bodies({**EXAMPLE_FLIGHT, "distance": " 719 "})[shape]
    assert post(client, path, padded).status_code == 422


@pytest.mark.parametrize("shape", ["one", "records", "columns"])
def test_an_origin_the_model_never_saw_is_refused_naming_the_allowed_ones(client, shape):
    """Item 4: "ORD" was scored; the model knows EWR, JFK and LGA only. A carrier or a
    destination it never saw is still scored (tests/api/test_api.py)."""
    path, body = bodies({**EXAMPLE_FLIGHT, "origin": "ORD"})[shape]
    r = post(client, path, body)
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert "origin" in error["loc"] and error["msg"] == "Input should be 'EWR', 'JFK' or 'LGA'"


BAD = {k: 12345 if isinstance(v, str) else "bad" for k, v in EXAMPLE_FLIGHT.items()}


def test_error_answers_stay_small(client):
    """Item 5 (issue 23: errors once grew with the body): a list stops at its first bad
    item, many unknown keys are one error, and an answer lists at most MAX_ERRORS errors with
    their count."""
    r = post(client, "/predict/batch", {"flights": [BAD] * 8000})
    assert r.status_code == 422 and len(r.content) < 10_000
    assert r.json()["error_count"] == len(BAD)
    assert {tuple(e["loc"][:3]) for e in r.json()["detail"]} == {("body", "flights", 0)}
    r = post(client, "/predict/batch", {"columns": columns_of([BAD] * 8000)})
    assert r.status_code == 422 and len(r.content) < 10_000
    assert {e["loc"][-1] for e in r.json()["detail"]} == {0}

    unknown = {f"k{i:05d}": 0 for i in range(20_000)}
    r = post(client, "/predict", {**EXAMPLE_FLIGHT, **unknown})
    assert r.status_code == 422 and len(r.content) < 1_000
    assert r.json()["error_count"] == 1 and "20000 unknown fields" in r.json()["detail"][0]["msg"]

    few_unknown = dict(list(unknown.items())[:5])
    r = post(client, "/predict/batch", {"flights": [{**BAD, **few_unknown}]})
    detail = r.json()["detail"]
    assert r.status_code == 422 and len(detail) == MAX_ERRORS
    assert r.json()["error_count"] == len(BAD) + len(few_unknown)
