"""The /predict/batch fast path (serve.fast_paths.batch_parse, app/batch_fast_path.py)
answers every body exactly as the plain path (FastAPI's own parse, app/routes.py) does:
the same probabilities for valid bodies, the same 422 for everything else. Valid bodies
really take the fast path; with the switch off it is never called."""

from __future__ import annotations

import copy
import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from app import batch_fast_path
from app.main import create_app, default_service
from src.common.schema import API_REQUEST_FIELDS, EXAMPLE_FLIGHT
from tests.api.support import cfg_with, columns_of, records

SECOND = {**EXAMPLE_FLIGHT, "tailnum": None, "wind_gust": 20.7, "origin": "JFK", "day": 31}


def body(**changes) -> bytes:
    """Two records; `changes` applied to the second (`...` removes the field)."""
    recs = [copy.deepcopy(EXAMPLE_FLIGHT), copy.deepcopy(SECOND)]
    for key, value in changes.items():
        if value is ...:
            recs[1].pop(key)
        else:
            recs[1][key] = value
    return json.dumps({"flights": recs}).encode()


CASES = {
    "valid records": body(),
    "int as integral float": body(year=2013.0),
    "int as fractional float": body(hour=17.5),
    "int as numeric string": body(hour="17"),
    "int as bool": body(hour=True),
    "float as int": body(temp=70),
    "float as string": body(temp="70.5"),
    "str as number": body(carrier=9),
    "optional field omitted": body(wind_gust=...),
    "required field omitted": body(carrier=...),
    "required field null": body(origin=None),
    "unknown field": body(gate="B12"),
    "out of range": body(month=13),
    "not a date": body(month=2, day=30),
    "unseen destination": body(dest="BOS"),  # fits the pattern: scored as unseen
    "origin outside New York": body(origin="BOS"),
    "pattern": body(origin="bos"),
    "NaN": body().replace(b'"temp": 78.1', b'"temp": NaN', 1),
    "flight number": body(flight=1545),
    "flight number null": body(flight=None),
    "flight number out of range": body(flight=0),
    "flight number as string": body(flight="1545"),
    "flight number fractional": body(flight=1545.5),
    "flight number and an unknown field": body(flight=1545, gate="B12"),
    "columns": json.dumps({"columns": columns_of([EXAMPLE_FLIGHT, SECOND])}).encode(),
    "columns with flight numbers": json.dumps(
        {"columns": {**columns_of([EXAMPLE_FLIGHT, SECOND]), "flight": [1545, None]}}
    ).encode(),
    "columns, flight numbers ragged": json.dumps(
        {"columns": {**columns_of([EXAMPLE_FLIGHT, SECOND]), "flight": [1545]}}
    ).encode(),
    "columns, optional column omitted": json.dumps(
        {"columns": {k: v for k, v in columns_of([EXAMPLE_FLIGHT]).items() if k != "wind_gust"}}
    ).encode(),
    "columns ragged": json.dumps(
        {"columns": {k: [v] * (2 if k == "temp" else 1) for k, v in EXAMPLE_FLIGHT.items()}}
    ).encode(),
    "both shapes": json.dumps({"flights": [EXAMPLE_FLIGHT], "columns": {}}).encode(),
    "empty list": b'{"flights": []}',
    "record not an object": b'{"flights": [1]}',
    "record a list": json.dumps({"flights": [EXAMPLE_FLIGHT, list(SECOND.values())]}).encode(),
    "extra top-level key": json.dumps({"flights": [EXAMPLE_FLIGHT], "x": 1}).encode(),
    "not json": b'{"flights": [',
    "top-level list": b"[]",
}
# Both paths take text written as a number, never a boolean (app/schemas.py).
VALID = {"valid records", "int as integral float", "int as numeric string"}
VALID |= {"float as int", "float as string", "optional field omitted", "unseen destination"}
VALID |= {"columns", "columns, optional column omitted"}
VALID |= {"flight number", "flight number null", "flight number as string"}
VALID |= {"columns with flight numbers"}


@pytest.fixture(scope="module")
def clients(smoke_pipeline):
    """One app with the fast path on, one with it off (the plain path)."""
    on = create_app(default_service, cfg_with(fast_paths={"batch_parse": True}))
    off = create_app(default_service, cfg_with(fast_paths={"batch_parse": False}))
    with TestClient(on) as fast, TestClient(off) as plain:
        yield fast, plain


def answer(client, raw: bytes) -> tuple[int, dict]:
    r = client.post("/predict/batch", content=raw, headers={"content-type": "application/json"})
    payload = r.json()
    payload.pop("request_id", None)  # new for every request
    return r.status_code, payload


@pytest.mark.parametrize("raw", CASES.values(), ids=CASES.keys())
def test_both_paths_answer_alike(clients, raw):
    fast, plain = clients
    assert answer(fast, raw) == answer(plain, raw)


@pytest.mark.parametrize("name", CASES)
def test_the_fast_path_takes_exactly_the_valid_bodies(clients, name):
    """Valid bodies are parsed by the fast path; every other body goes to the plain path
    (which answers 422: checked above)."""
    taken = batch_fast_path.columns_if_valid(CASES[name]) is not None
    assert taken == (name in VALID)
    status, _ = answer(clients[1], CASES[name])
    assert (status == 200) == (name in VALID)


def test_test_rows_score_alike_and_the_switch_decides(clients, test_split, monkeypatch):
    raw = json.dumps({"flights": records(test_split, 500)}).encode()
    fast, plain = clients
    assert answer(fast, raw) == answer(plain, raw)
    calls = []
    original = batch_fast_path.columns_if_valid
    monkeypatch.setattr(
        batch_fast_path, "columns_if_valid", lambda b: calls.append(1) or original(b)
    )
    answer(plain, raw)
    assert calls == []  # switched off: the fast path never runs
    answer(fast, raw)
    assert calls == [1]


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.sampled_from(["EWR", "UA", "17", "2013", "1e3", "N14228"]),
)


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(API_REQUEST_FIELDS), value=values)
def test_any_single_field_value_is_answered_alike(clients, field, value):
    raw = body(**{field: value})
    assert answer(clients[0], raw) == answer(clients[1], raw)
