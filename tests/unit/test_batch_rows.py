"""The batch job's row checks (src/batch/rows.py) apply the API's rules: every record the
API's Flight model refuses is a reject naming the same field, and every record it accepts
passes, in the declared dtypes. Text is a number by the same rule on both sides, whether
the row checks or Arrow (a CSV column, src/batch/files.py) read it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.schemas import Flight
from src.batch.files import numbers_parsed
from src.batch.rows import REJECT_FIELD, REJECT_REASON, check_rows
from src.common.errors import SchemaError
from src.common.schema import EXAMPLE_FLIGHT, NUMBER_TEXT, REQUEST_FIELDS

# (field, bad value, what the reason says). One field changed from the documented example.
BAD = [
    ("year", 1999, "below the minimum 2000"),
    ("month", 13, "above the maximum 12"),
    ("month", 0, "below the minimum 1"),
    ("month", 2.5, "not a whole number"),
    ("month", "x", "'x' is not a number"),
    ("month", None, "missing"),
    ("day", 32, "above the maximum 31"),
    ("hour", 24, "above the maximum 23"),
    ("minute", -1, "below the minimum 0"),
    ("distance", 0, "below the minimum 1"),
    ("carrier", "UAL", "does not match"),
    ("carrier", "ua", "does not match"),
    ("carrier", 12, "is not text"),
    ("origin", None, "missing"),
    ("origin", "ORD", "'ORD' is not one of EWR, JFK, LGA"),  # issue 23: the model knows 3
    ("distance", True, "True is not a number"),  # issue 23: booleans were scored as 1
    ("distance", " 719 ", "' 719 ' is not a number"),  # issue 23: the batch job took it
    ("distance", "0x2cf", "'0x2cf' is not a number"),
    ("temp", "nan", "'nan' is not a number"),
    ("hour", "1e3", "1000 is above the maximum 23"),
    ("dest", "O", "does not match"),
    ("tailnum", "N-1", "does not match"),
    ("temp", math.inf, "not finite"),
    ("temp", -100.0, "below the minimum -80"),
    ("humid", 101.0, "above the maximum 100"),
    ("pressure", 800.0, "below the minimum 850"),
    ("visib", "far", "'far' is not a number"),
]
NOT_A_DAY = [(2, 30), (4, 31), (2, 29)]  # 2013 is not a leap year
FINE = [("tailnum", None), ("wind_gust", None), ("temp", None), ("month", "8"), ("temp", "70.5")]
FINE += [("month", "8.0"), ("month", "08"), ("distance", "7.19e2"), ("temp", "+7e1")]


def frame_of(*records: dict) -> pd.DataFrame:
    return pd.DataFrame.from_records(list(records), columns=list(REQUEST_FIELDS))


def api_refuses(record: dict) -> list:
    try:
        Flight(**record)
    except ValidationError as exc:
        return exc.errors()
    return []


@pytest.mark.parametrize(("field", "value", "why"), BAD)
def test_a_bad_field_is_rejected_as_the_api_refuses_it(field, value, why):
    bad = {**EXAMPLE_FLIGHT, field: value}
    errors = api_refuses(bad)
    assert errors and errors[0]["loc"] == (field,), "the API accepts what the batch rejects"
    checked = check_rows(frame_of(EXAMPLE_FLIGHT, bad), "file.csv")
    assert checked.ok.tolist() == [True, False]
    assert checked.rejects[REJECT_FIELD].tolist() == [field]
    assert why in checked.rejects[REJECT_REASON].iloc[0]
    assert checked.rejects.index.tolist() == [1]  # the row's position in the batch


@pytest.mark.parametrize(("month", "day"), NOT_A_DAY)
def test_a_day_missing_from_the_calendar_is_rejected(month, day):
    bad = {**EXAMPLE_FLIGHT, "month": month, "day": day}
    assert api_refuses(bad)
    checked = check_rows(frame_of(bad, EXAMPLE_FLIGHT), "f")
    assert checked.ok.tolist() == [False, True]
    assert checked.rejects[REJECT_FIELD].tolist() == ["day"]
    assert checked.rejects[REJECT_REASON].iloc[0] == f"2013-{month:02d}-{day:02d} is not a date"


@pytest.mark.parametrize(("field", "value"), FINE)
def test_what_the_api_accepts_passes_in_the_declared_dtypes(field, value):
    fine = {**EXAMPLE_FLIGHT, field: value}
    assert not api_refuses(fine)
    checked = check_rows(frame_of(EXAMPLE_FLIGHT, fine), "f")
    assert checked.ok.all() and checked.rejects.empty
    valid = checked.valid
    assert valid["month"].dtype == np.int64 and valid["temp"].dtype == np.float64
    assert valid["month"].tolist() == [8, 8]


def test_the_first_bad_field_in_declaration_order_is_named():
    bad = {**EXAMPLE_FLIGHT, "month": 13, "carrier": "toolong", "temp": math.inf}
    checked = check_rows(frame_of(bad), "f")
    assert checked.rejects[REJECT_FIELD].tolist() == ["month"]


def test_a_required_column_absent_from_the_file_fails_the_file():
    frame = frame_of(EXAMPLE_FLIGHT).drop(columns=["carrier"])
    with pytest.raises(SchemaError, match=r"flights\.csv: required column\(s\) \['carrier'\]"):
        check_rows(frame, "flights.csv")


def test_optional_columns_may_be_left_out_and_other_columns_are_kept():
    frame = frame_of(EXAMPLE_FLIGHT).drop(columns=["tailnum", "temp"]).assign(id=["a"])
    checked = check_rows(frame, "f")
    assert checked.ok.all()
    assert "tailnum" not in checked.valid and checked.valid["id"].tolist() == ["a"]


def test_a_boolean_column_is_not_numbers():
    frame = frame_of(EXAMPLE_FLIGHT, EXAMPLE_FLIGHT).assign(distance=[True, False])
    checked = check_rows(frame, "f")
    assert checked.rejects[REJECT_REASON].tolist() == [
        "True is not a number",
        "False is not a number",
    ]


TEXTS = st.one_of(
    st.from_regex(NUMBER_TEXT, fullmatch=True),
    st.text(alphabet=" +-.0123456789eEinfaINFAx_,", max_size=7),
    st.sampled_from(["nan", "NaN", "inf", "-Infinity", "1e400", "719", " 719", "١"]),
)


@pytest.mark.slow  # hundreds of generated cases: the whole suite's, not the quick tier's
@settings(max_examples=400, deadline=None)
@given(text=TEXTS, field=st.sampled_from(["distance", "temp"]))
def test_text_is_a_number_by_one_rule_in_the_api_and_the_batch_job(text, field):
    """Issue 23: the batch job took "1e3" and " 719 " for a distance, the API only one."""
    record = {**EXAMPLE_FLIGHT, field: text}
    checked = check_rows(frame_of(record), "f")
    assert checked.ok.tolist() == [not api_refuses(record)], checked.rejects[REJECT_REASON]


@pytest.mark.slow  # hundreds of generated cases: the whole suite's, not the quick tier's
@settings(max_examples=200, deadline=None)
@given(texts=st.lists(TEXTS, min_size=1, max_size=4))
def test_a_csv_column_arrow_reads_is_checked_as_the_rule_reads_it(texts):
    """A CSV batch's numbers are parsed by Arrow when it can (numbers_parsed): the rows kept
    and their values are those the row checks give the same text."""
    as_read = {k: None if v is None else str(v) for k, v in EXAMPLE_FLIGHT.items()}  # CSV text
    text = frame_of(*[as_read] * len(texts)).assign(temp=texts)
    parsed = numbers_parsed(pa.RecordBatch.from_pandas(text, preserve_index=False)).to_pandas()
    by_rule, by_arrow = check_rows(text, "f"), check_rows(parsed, "f")
    assert by_arrow.ok.tolist() == by_rule.ok.tolist()
    assert by_arrow.valid["temp"].tolist() == by_rule.valid["temp"].tolist()
