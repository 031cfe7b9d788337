"""The batch body's column-wise fast path accepts and rejects exactly what the full
record-by-record validation (BatchRequest) does, and returns the same columns."""

from __future__ import annotations

import copy
import json

import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from app.main import parse, parse_batch
from app.schemas import EXAMPLE_FLIGHT, BatchRequest, columns_if_valid
from src.common.schema import REQUEST_FIELDS

SECOND = {**EXAMPLE_FLIGHT, "tailnum": None, "wind_gust": 20.7, "origin": "JFK", "day": 31}


def outcome(parser, raw: bytes):
    try:
        return "ok", parser(raw)
    except RequestValidationError as exc:
        return "422", [(e["loc"], e["type"]) for e in exc.errors()]


def reference(raw: bytes):
    return parse(BatchRequest, raw).as_columns()


def body(**changes) -> bytes:
    records = [copy.deepcopy(EXAMPLE_FLIGHT), copy.deepcopy(SECOND)]
    for key, value in changes.items():
        if value is ...:
            records[1].pop(key)
        else:
            records[1][key] = value
    return json.dumps({"flights": records}).encode()


CASES = {
    "valid records": body(),
    "int as integral float": body(year=2013.0),
    "int as fractional float": body(hour=17.5),
    "int as numeric string": body(hour="17"),
    "int as bool": body(hour=True),
    "float as int": body(temp=70),
    "float as string": body(temp="70.5"),
    "str as number": body(carrier=9),
    "nullable omitted": body(wind_gust=...),
    "required omitted": body(carrier=...),
    "required null": body(origin=None),
    "unknown field": body(gate="B12"),
    "out of range": body(month=13),
    "not a date": body(month=2, day=30),
    "pattern": body(origin="BOS"),
    "columns": json.dumps({"columns": {k: [v] for k, v in EXAMPLE_FLIGHT.items()}}).encode(),
    "columns ragged": json.dumps(
        {"columns": {k: [v] * (2 if k == "temp" else 1) for k, v in EXAMPLE_FLIGHT.items()}}
    ).encode(),
    "both shapes": json.dumps({"flights": [EXAMPLE_FLIGHT], "columns": {}}).encode(),
    "empty list": b'{"flights": []}',
    "record not an object": b'{"flights": [1]}',
    "record a list": json.dumps(
        {"flights": [EXAMPLE_FLIGHT, list(EXAMPLE_FLIGHT.values())]}
    ).encode(),
    "omitted and unknown": body(wind_gust=...).replace(b'"visib"', b'"gate": "B12", "visib"'),
    "extra top-level key": json.dumps({"flights": [EXAMPLE_FLIGHT], "x": 1}).encode(),
    "not json": b'{"flights": [',
    "NaN literal": body().replace(b'"temp": 78.1', b'"temp": NaN', 1),
    "top-level list": b"[]",
}


@pytest.mark.parametrize("raw", CASES.values(), ids=CASES.keys())
def test_fast_path_agrees_with_record_validation(raw):
    assert outcome(parse_batch, raw) == outcome(reference, raw)


def test_valid_bodies_take_the_fast_path():
    cols = columns_if_valid(json.loads(CASES["valid records"]))
    assert cols is not None and list(cols) == list(REQUEST_FIELDS)
    assert cols["tailnum"] == ["N14228", None] and cols["wind_gust"] == [None, 20.7]
    assert columns_if_valid(json.loads(CASES["columns"])) is not None
    assert columns_if_valid(json.loads(CASES["unknown field"])) is None
    assert columns_if_valid(json.loads(CASES["omitted and unknown"])) is None
    omitted = columns_if_valid(json.loads(CASES["nullable omitted"]))
    assert omitted is not None and omitted["wind_gust"] == [None, None]


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.sampled_from(["EWR", "UA", "17", "2013", "1e3", "N14228"]),
)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(REQUEST_FIELDS), value=values)
def test_any_single_field_value_agrees(field, value):
    assert outcome(parse_batch, body(**{field: value})) == outcome(
        reference, body(**{field: value})
    )
