"""The API's request models (app/schemas.py): a batch sent as `flights` (records) or as
`columns` is the same batch, field by field, whether it is accepted or rejected; numbers,
booleans and numeric text by the one rule; the origin's allowed values; few errors for any body.

FastAPI decodes the JSON body and validates the decoded object with these models (python
mode), so the tests validate `json.loads(json.dumps(body))`: what the route receives.
"""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.schemas import MAX_ERRORS, BatchRequest, Flight
from src.common.schema import (
    API_REQUEST,
    API_REQUEST_FIELDS,
    EXAMPLE_FLIGHT,
    NUMBER_TEXT,
    REQUEST,
    Column,
)

# A second real-looking flight: no tail number, a gust reading, the last day of August.
SECOND = {**EXAMPLE_FLIGHT, "tailnum": None, "wind_gust": 20.7, "origin": "JFK", "day": 31}
OMIT = object()  # a change that leaves the field out of the record
FLOAT_FIELDS = [c.name for c in REQUEST if c.kind == "float"]
INT_FIELDS = [c.name for c in API_REQUEST if c.kind == "int"]  # the flight number too
REQUIRED_FIELDS = [c.name for c in REQUEST if not c.nullable]
NUMBER_FIELDS = [c.name for c in API_REQUEST if c.kind in ("int", "float")]


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


def verdict(body: dict):
    """("ok", the model's input columns) or "rejected". Which fields are named may differ:
    a list of records stops at its first bad record, each column at its first bad value."""
    status, what = outcome(body)
    return (status, what) if status == "ok" else status


def fields_named(exc: ValidationError) -> set[str]:
    """Field names in the errors' locations: ("flights", i, field) or ("columns", field, i).
    Date checks run after the fields are valid and name no field; they count as rejections."""
    return {part for e in exc.errors() for part in e["loc"] if isinstance(part, str)} - {
        "flights",
        "columns",
    }


def in_schema(col: Column) -> st.SearchStrategy:
    """Values the column's declaration allows, in the forms a JSON client may send them
    (17, 17.0 and "17" for an int: a whole float, and text written as a number)."""
    if col.allowed:
        allowed = st.sampled_from(col.allowed)
    elif col.kind == "str":
        allowed = st.from_regex(col.pattern, fullmatch=True) if col.pattern else st.text()
    elif col.kind == "int":
        ints = st.integers(int(col.min), int(col.max))
        allowed = st.one_of(ints, ints.map(float), ints.map(str))
    else:  # a bound may be open (the store's ages have no upper one)
        low = None if col.min is None else math.ceil(col.min)
        high = None if col.max is None else math.floor(col.max)
        whole = st.integers(low, high)
        allowed = st.one_of(st.floats(col.min, col.max, allow_infinity=False), whole)
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

    by_records = verdict({"flights": records})
    by_columns = verdict(as_columns_body(records))

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
    expected = "int_type"  # strict: an int field takes a whole number only
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


@pytest.mark.parametrize("field", NUMBER_FIELDS)
@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_is_never_a_number(field, value):
    """Issue 23: `"distance": true` was scored as 1."""
    expected = "int_type" if field in INT_FIELDS else "float_type"
    assert errors(Flight, {**EXAMPLE_FLIGHT, field: value}) == [((field,), expected)]
    records = make_records([{}, {field: value}])
    assert errors(BatchRequest, {"flights": records}) == [(("flights", 1, field), expected)]
    assert errors(BatchRequest, as_columns_body(records)) == [(("columns", field, 1), expected)]


NUMBER_TEXTS = {"719": 719, "719.0": 719, "7.19e2": 719, "+719": 719, "0719": 719, "1e3": 1000}
NOT_NUMBER_TEXTS = [" 719", "719 ", "7_19", "0x2cf", "719,0", "", "true", "NaN", "Infinity"]


@pytest.mark.parametrize(("text", "value"), NUMBER_TEXTS.items())
def test_text_written_as_a_number_is_read_as_one(text, value):
    """Issue 23: the API took " 719 " and refused "1e3" for an int, the batch job the other
    way round; both now read text by NUMBER_TEXT (tests/unit/test_batch_rows.py)."""
    assert Flight.model_validate({**EXAMPLE_FLIGHT, "distance": text}).distance == value
    records = make_records([{"distance": text}, {}])
    assert outcome({"flights": records})[1]["distance"][0] == value
    assert outcome(as_columns_body(records))[1]["distance"][0] == value


@pytest.mark.parametrize("text", NOT_NUMBER_TEXTS)
@pytest.mark.parametrize("field", ["distance", "temp"])
def test_other_text_is_not_a_number(text, field):
    expected = "int_type" if field == "distance" else "float_type"
    assert errors(Flight, {**EXAMPLE_FLIGHT, field: text}) == [((field,), expected)]
    assert errors(BatchRequest, as_columns_body(make_records([{field: text}]))) == [
        (("columns", field, 0), expected)
    ]


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.from_regex(NUMBER_TEXT, fullmatch=True), st.text(max_size=8)))
def test_a_float_field_takes_text_exactly_when_the_rule_does(text):
    number = float(text) if re.fullmatch(NUMBER_TEXT, text) else None
    in_bounds = number is not None and -80 <= number <= 140  # temp's declared bounds
    try:
        taken = Flight.model_validate({**EXAMPLE_FLIGHT, "temp": text}).temp
    except ValidationError:
        taken = None
    assert taken == (number if in_bounds else None)


def test_the_origin_is_one_of_the_airports_the_model_knows():
    """Issue 23: "ORD" was scored, as an origin the model had never seen."""
    assert Flight.model_json_schema()["properties"]["origin"]["enum"] == ["EWR", "JFK", "LGA"]
    for body, loc in (
        ({**EXAMPLE_FLIGHT, "origin": "ORD"}, ("origin",)),
        ({"flights": make_records([{}, {"origin": "ORD"}])}, ("flights", 1, "origin")),
        (as_columns_body(make_records([{}, {"origin": "ORD"}])), ("columns", "origin", 1)),
    ):
        model = Flight if "origin" in body else BatchRequest
        with pytest.raises(ValidationError) as err:
            model.model_validate(body)
        ((where, message),) = [(e["loc"], e["msg"]) for e in err.value.errors()]
        assert where == loc and message == "Input should be 'EWR', 'JFK' or 'LGA'"


BAD_FLIGHT = {k: 12345 if isinstance(v, str) else "bad" for k, v in EXAMPLE_FLIGHT.items()}


def test_a_list_stops_at_its_first_bad_item():
    """Issue 23 item 5: a list of bad records once made an error per field of every record."""
    with pytest.raises(ValidationError) as err:
        BatchRequest.model_validate({"flights": [EXAMPLE_FLIGHT] + [BAD_FLIGHT] * 8000})
    locs = [e["loc"] for e in err.value.errors()]
    assert {loc[:2] for loc in locs} == {("flights", 1)} and len(locs) == len(EXAMPLE_FLIGHT)
    with pytest.raises(ValidationError) as err:
        BatchRequest.model_validate(as_columns_body([EXAMPLE_FLIGHT] + [BAD_FLIGHT] * 8000))
    locs = [e["loc"] for e in err.value.errors()]
    assert {loc[2] for loc in locs} == {1} and len(locs) == len(EXAMPLE_FLIGHT)


@pytest.mark.parametrize("unknown", [1, MAX_ERRORS, MAX_ERRORS + 1, 20_000])
def test_unknown_keys_are_each_an_error_up_to_a_cap(unknown):
    """Up to MAX_ERRORS unknown keys, each is named where it is; past that, one error counts
    them (20,000 unknown keys made 20,000 errors)."""
    keys = {f"k{i}": 0 for i in range(unknown)}
    bodies = [
        (Flight, {**EXAMPLE_FLIGHT, **keys}, ()),
        (BatchRequest, {"flights": [{**EXAMPLE_FLIGHT, **keys}]}, ("flights", 0)),
        (
            BatchRequest,
            {"columns": {**as_columns_body([EXAMPLE_FLIGHT])["columns"], **keys}},
            ("columns",),
        ),
        (BatchRequest, {"flights": [EXAMPLE_FLIGHT], **keys}, ()),
    ]
    for model, body, where in bodies:
        with pytest.raises(ValidationError) as err:
            model.model_validate(body)
        found = [(e["loc"], e["type"], e["msg"]) for e in err.value.errors()]
        if unknown <= MAX_ERRORS:
            assert [loc for loc, _, _ in found] == [(*where, k) for k in keys]
        else:
            assert found == [
                (
                    where,
                    "extra_forbidden",
                    f"{unknown} unknown fields (the first: 'k0', 'k1', 'k2', 'k3', 'k4')",
                )
            ]
