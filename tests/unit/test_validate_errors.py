"""Raw-table checks (src/data/validate.py) on what a changed or hand-edited release file can
hold, beyond tests/unit/test_preprocess.py's cases: a timestamp that is not ISO 8601, a
required integer column with a gap, numbers in a text column, a value below its minimum, and
weather given as true/false. Each error names the file and the column. Real rows."""

from __future__ import annotations

import pandas as pd
import pytest

from src.common.errors import SchemaError
from src.common.schema import FLIGHTS, WEATHER_TABLE
from src.data.validate import validate_table
from tests.unit.conftest import read_raw_csv

FLIGHTS_FILE, WEATHER_FILE = FLIGHTS.file, WEATHER_TABLE.file


@pytest.fixture(scope="module")
def flights(package_dir) -> pd.DataFrame:
    """The first 50 rows of the real flights file, read as read_snapshot reads it."""
    return read_raw_csv(package_dir / FLIGHTS_FILE, 50)


@pytest.fixture(scope="module")
def weather(package_dir) -> pd.DataFrame:
    return read_raw_csv(package_dir / WEATHER_FILE, 50)


def first(df: pd.DataFrame, column: str, value) -> pd.DataFrame:
    """`df` with the first value of `column` replaced (the column's dtype follows)."""
    return df.assign(**{column: [value, *df[column].iloc[1:]]})


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (
            lambda df: first(df, "time_hour", "01/01/2013 5am"),
            r"column 'time_hour' is not an ISO datetime",
        ),
        # A gap in a required integer column: pandas reads the column as float.
        (
            lambda df: first(df, "sched_dep_time", None).astype({"sched_dep_time": "float64"}),
            r"column 'sched_dep_time' should be int, found dtype float64",
        ),
        (lambda df: first(df, "dest", 404), r"column 'dest' should hold strings only"),
        (lambda df: first(df, "distance", 0), r"column 'distance' has values < 1"),
    ],
    ids=["not-iso-time", "int-with-gap", "number-in-text", "below-min"],
)
def test_flights_errors_name_file_and_column(flights, break_it, message):
    validate_table(flights, FLIGHTS, FLIGHTS_FILE)  # the real rows are valid
    with pytest.raises(SchemaError, match=message) as err:
        validate_table(break_it(flights), FLIGHTS, FLIGHTS_FILE)
    assert str(err.value).startswith(f"{FLIGHTS_FILE}: ")


def test_weather_as_true_false_is_not_a_number(weather):
    validate_table(weather, WEATHER_TABLE, WEATHER_FILE)
    broken = weather.assign(temp=weather["temp"] > 40)  # a spreadsheet's TRUE/FALSE
    with pytest.raises(SchemaError, match=r"column 'temp' should be float, found dtype bool"):
        validate_table(broken, WEATHER_TABLE, WEATHER_FILE)
