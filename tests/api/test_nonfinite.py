"""Regression: non-finite numbers (NaN, Infinity, -Infinity) in a request body.

Python's JSON parser, which FastAPI uses, accepts these literals, so they reach validation
and are rejected there (422). FastAPI's stock 422 echoes each error's `input` back; a
non-finite input cannot be written as JSON, so rendering the error itself failed and the
client got a 500. The app's 422 handler (app/main.py `validation_error`) drops the input, and
the schema's floats are `allow_inf_nan=False` (app/schemas.py), so the error says what is
wrong ("finite number") rather than that NaN is out of bounds.

Each case is checked in-process and once against a real server (gunicorn + uvicorn workers),
where the failure was seen. Bodies are sent as raw bytes: json.dumps would refuse NaN
(allow_nan=False) or write it its own way."""

from __future__ import annotations

import http.client

import pytest
from fastapi.testclient import TestClient

from app.main import create_app, default_service
from src.common.schema import EXAMPLE_FLIGHT, REQUEST
from tests.api.support import CFG, columns_of, flight_with, strict_json, with_literal
from tests.conftest import gunicorn

KINDS = {c.name: c.kind for c in REQUEST}
CASES = [("distance", "NaN"), ("temp", "Infinity"), ("temp", "-Infinity"), ("wind_speed", "NaN")]
OTHER = {**EXAMPLE_FLIGHT, "hour": 7, "carrier": "DL"}


def bodies(field: str, literal: str) -> dict[str, tuple[str, bytes, list]]:
    """By shape, (route, raw body, the loc its one error must have): one flight, a batch of
    records (the bad value in the second), a batch of columns (the bad value second in its
    column)."""
    columns = columns_of([OTHER, EXAMPLE_FLIGHT])
    return {
        "one": ("/predict", flight_with(field, literal), ["body", field]),
        "records": (
            "/predict/batch",
            with_literal({"flights": [OTHER, EXAMPLE_FLIGHT]}, ("flights", 1, field), literal),
            ["body", "flights", 1, field],
        ),
        "columns": (
            "/predict/batch",
            with_literal({"columns": columns}, ("columns", field, 1), literal),
            ["body", "columns", field, 1],
        ),
    }


ALL = [
    pytest.param(*case, id=f"{shape}-{field}={literal}")
    for field, literal in CASES
    for shape, case in bodies(field, literal).items()
]


def check_422(status: int, content_type: str, payload: bytes, loc: list) -> None:
    assert status == 422, (status, payload[:300])  # never 500
    assert content_type.startswith("application/json")
    detail = strict_json(payload)["detail"]  # standard JSON: no NaN or Infinity in it
    assert [e["loc"] for e in detail] == [loc]
    (error,) = detail
    assert "input" not in error
    # A float field says what is wrong, not that NaN is out of its bounds; an int field
    # (distance, strict) that it wants a whole number.
    if KINDS[loc[-1] if isinstance(loc[-1], str) else loc[-2]] == "int":
        assert error["type"] == "int_type", error
    else:
        assert error["type"] == "finite_number" and "finite" in error["msg"], error


@pytest.fixture(scope="module")
def client(smoke_pipeline):
    # raise_server_exceptions=False: a failure to render the 422 is seen as the client sees
    # it (a 500), not as an exception raised into the test.
    with TestClient(create_app(default_service, CFG), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize(("route", "body", "loc"), ALL)
def test_non_finite_number_is_422_naming_the_field(client, route, body, loc):
    r = client.post(route, content=body, headers={"content-type": "application/json"})
    check_422(r.status_code, r.headers["content-type"], r.content, loc)


def test_the_cases_are_what_they_claim():
    """The raw bodies really hold the bare literals (what a JavaScript client's NaN turns
    into in some serializers), and each field is of the kind the case is about."""
    assert KINDS["distance"] == "int" and KINDS["temp"] == KINDS["wind_speed"] == "float"
    for field, literal in CASES:
        for _, body, _ in bodies(field, literal).values():
            assert f'"{field}": {literal}'.encode() in body or f"{literal}]".encode() in body
            with pytest.raises(ValueError, match="not JSON"):
                strict_json(body)


def test_finite_values_in_the_same_bodies_are_scored(client):
    """The same bodies with ordinary numbers are 200: the 422s above are about the values."""
    for field, _ in CASES:
        literal = str(EXAMPLE_FLIGHT[field])
        for route, body, _ in bodies(field, literal).values():
            r = client.post(route, content=body, headers={"content-type": "application/json"})
            assert r.status_code == 200, (route, r.text[:300])


@pytest.mark.slow
def test_non_finite_numbers_on_a_real_server(smoke_pipeline, tmp_path):
    """The production server: every case answers 422 with standard JSON, and the worker goes
    on serving."""
    log = tmp_path / "gunicorn.log"
    with gunicorn({"FD_DATA_DIR": str(tmp_path / "data")}, workers=1, log=log) as (base, _):
        host, port = base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            headers = {"Content-Type": "application/json"}
            for param in ALL:
                route, body, loc = param.values
                conn.request("POST", route, body, headers)
                r = conn.getresponse()
                payload = r.read()
                try:
                    check_422(r.status, r.getheader("content-type", ""), payload, loc)
                except AssertionError as exc:
                    raise AssertionError(f"{param.id}: {exc}\n{log.read_text()[-2000:]}") from None
            conn.request("POST", "/predict", flight_with("temp", "78.1"), headers)
            r = conn.getresponse()
            assert (
                r.status == 200 and strict_json(r.read())["model_name"] == CFG.registry.model_name
            )
        finally:
            conn.close()
