"""The batch job's row checks (src/batch/rows.py) apply the API's rules: every record the
API's Flight model refuses is a reject naming the same field, and every record it accepts
passes, in the declared dtypes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from app.schemas import Flight
from src.batch.rows import REJECT_FIELD, REJECT_REASON, check_rows
from src.common.errors import SchemaError
from src.common.schema import EXAMPLE_FLIGHT, REQUEST_FIELDS

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
