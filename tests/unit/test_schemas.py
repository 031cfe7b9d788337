"""The API's request models (app/schemas.py): a batch sent as `flights` (records) or as
`columns` is the same batch, field by field, whether it is accepted or rejected.

FastAPI decodes the JSON body and validates the decoded object with these models (python
mode), so the tests validate `json.loads(json.dumps(body))`: what the route receives.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.schemas import BatchRequest, Flight
from src.common.schema import API_REQUEST, API_REQUEST_FIELDS, EXAMPLE_FLIGHT, REQUEST, Column

# A second real-looking flight: no tail number, a gust reading, the last day of August.
SECOND = {**EXAMPLE_FLIGHT, "tailnum": None, "wind_gust": 20.7, "origin": "JFK", "day": 31}
OMIT = object()  # a change that leaves the field out of the record
FLOAT_FIELDS = [c.name for c in REQUEST if c.kind == "float"]
INT_FIELDS = [c.name for c in API_REQUEST if c.kind == "int"]  # the flight number too
REQUIRED_FIELDS = [c.name for c in REQUEST if not c.nullable]


def decoded(body: dict):
    """The body as the route sees it: through JSON (NaN and Infinity are JSON literals here,
    as Python's json module and so Starlette read them)."""
    return json.loads(json.dumps(body))


def make_records(changes: list[dict]) -> list[dict]:
    """One record per change set, alternating the two base flights."""
    records = []
    for i, change in enumerate(changes):
        record = dict(EXAMPLE_FLIGHT if i % 2 == 0 else SECOND)
        for field, value in change.items():
            if value is OMIT:
                record.pop(field, None)
            else:
                record[field] = value
        records.append(record)
    return records


def as_columns_body(records: list[dict]) -> dict:
    """The same flights as one list per field: a field left out of some records is None
    there; a field left out of every record is left out of the columns too."""
    fields = {field: None for record in records for field in record}  # first-seen order
    return {"columns": {f: [record.get(f) for record in records] for f in fields}}


def outcome(body: dict):
    """("ok", the model's input columns) or ("rejected", the fields the errors name)."""
    try:
        return "ok", BatchRequest.model_validate(decoded(body)).as_columns()
    except ValidationError as exc:
        return "rejected", fields_named(exc)


def fields_named(exc: ValidationError) -> set[str]:
    """Field names in the errors' locations: ("flights", i, field) or ("columns", field, i).
    Date checks run after the fields are valid and name no field; they count as rejections."""
    return {part for e in exc.errors() for part in e["loc"] if isinstance(part, str)} - {
        "flights",
        "columns",
    }


def in_schema(col: Column) -> st.SearchStrategy:
    """Values the column's declaration allows, in the forms a JSON client may send them
    (17, 17.0 and "17" for an int: the models parse in lax mode)."""
    if col.kind == "str":
        allowed = st.from_regex(col.pattern, fullmatch=True) if col.pattern else st.text()
    elif col.kind == "int":
        ints = st.integers(int(col.min), int(col.max))
        allowed = st.one_of(ints, ints.map(float), ints.map(str))
    else:
        whole = st.integers(math.ceil(col.min), math.floor(col.max))
        allowed = st.one_of(st.floats(col.min, col.max), whole)
    return st.one_of(allowed, st.none()) if col.nullable else allowed


anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),  # NaN and +-Infinity included
    st.text(max_size=6),
    st.sampled_from(["EWR", "JFK", "UA", "17", "2013", "1e3", "70.5", "N14228", "n14228"]),
    st.just(OMIT),
)
# One change: a field and a value that is valid for it about half the time; "gate" is a
# field the schema does not know.
change = st.sampled_from([*API_REQUEST, "gate"]).flatmap(
    lambda col: (
        st.tuples(st.just(col), anything)
        if col == "gate"
        else st.tuples(st.just(col.name), st.one_of(in_schema(col), anything))
    )
)
changes = st.lists(change, max_size=3).map(dict)


@settings(max_examples=300, deadline=None)
@given(batch=st.lists(changes, min_size=1, max_size=4))
@example(batch=[{}, {"month": 2}])  # 31 February: only the date check rejects it
@example(batch=[{"tailnum": OMIT}, {"temp": OMIT, "hour": "17"}])
def test_records_and_columns_accept_and_reject_the_same_batches(batch):
    records = make_records(batch)

    by_records = outcome({"flights": records})
    by_columns = outcome(as_columns_body(records))

    assert by_records == by_columns


def test_valid_batch_gives_the_same_columns_in_both_shapes():
    records = make_records([{}, {"wind_gust": OMIT}])
    expected = {f: [r.get(f) for r in records] for f in API_REQUEST_FIELDS}

    assert outcome({"flights": records}) == ("ok", expected)
    assert outcome(as_columns_body(records)) == ("ok", expected)
    # a column left out entirely is missing on every row (here: tail number and weather)
    only_required = {"columns": {f: [EXAMPLE_FLIGHT[f]] * 2 for f in REQUIRED_FIELDS}}
    status, cols = outcome(only_required)
    assert status == "ok" and cols["tailnum"] == [None, None] and cols["temp"] == [None, None]


def errors(model, body: dict) -> list[tuple]:
    """(location, error type) of each error `model` finds in the decoded body."""
    with pytest.raises(ValidationError) as err:
        model.model_validate(decoded(body))
    return [(e["loc"], e["type"]) for e in err.value.errors()]


@pytest.mark.parametrize("field", FLOAT_FIELDS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_float_fields_reject_nan_and_infinity(field, value):
    """allow_inf_nan=False: a probability computed from NaN or Infinity means nothing, and
    missing weather is sent as null, not NaN. The error is the finiteness check itself, not
    a range bound that NaN happens to fail (a field without bounds would let NaN through)."""
    assert errors(Flight, {**EXAMPLE_FLIGHT, field: value}) == [((field,), "finite_number")]

    records = make_records([{}, {field: value}])
    assert errors(BatchRequest, {"flights": records}) == [(("flights", 1, field), "finite_number")]
    assert errors(BatchRequest, as_columns_body(records)) == [
        (("columns", field, 1), "finite_number")
    ]


@pytest.mark.parametrize("field", INT_FIELDS)
@pytest.mark.parametrize("value", [math.nan, math.inf, 17.5], ids=["nan", "inf", "fraction"])
def test_int_fields_reject_nan_infinity_and_fractions(field, value):
    expected = "int_from_float" if value == 17.5 else "finite_number"
    assert errors(Flight, {**EXAMPLE_FLIGHT, field: value}) == [((field,), expected)]

    records = make_records([{field: value}])
    assert errors(BatchRequest, {"flights": records}) == [(("flights", 0, field), expected)]
    assert errors(BatchRequest, as_columns_body(records)) == [(("columns", field, 0), expected)]


def test_distance_is_an_int_field_like_the_public_data():
    """The schema declares distance "int" (the raw file holds int64): whole miles as a float
    are accepted and come out as an int."""
    assert Flight.model_validate({**EXAMPLE_FLIGHT, "distance": 719.0}).distance == 719
    assert type(Flight.model_validate(EXAMPLE_FLIGHT).distance) is int


def test_the_flight_number_is_optional_and_checked():
    """The API's flight number (not a model input): omitted or null is missing; given, a
    whole number 1..9999, named in the error otherwise."""
    assert Flight.model_validate(EXAMPLE_FLIGHT).flight is None
    assert Flight.model_validate({**EXAMPLE_FLIGHT, "flight": 1545}).flight == 1545
    assert errors(Flight, {**EXAMPLE_FLIGHT, "flight": 0}) == [(("flight",), "greater_than_equal")]
    assert errors(Flight, {**EXAMPLE_FLIGHT, "flight": 10000}) == [(("flight",), "less_than_equal")]
    records = make_records([{"flight": 1545}, {}])
    expected = [1545, None]
    assert outcome({"flights": records})[1]["flight"] == expected
    assert outcome(as_columns_body(records))[1]["flight"] == expected
