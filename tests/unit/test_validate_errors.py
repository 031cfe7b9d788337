"""Raw-table checks (src/data/validate.py) on the weather file: weather given as true/false
(a spreadsheet's export) is refused, naming the file and the column. Real rows. The flights
file's cases are in tests/unit/test_preprocess.py."""

from __future__ import annotations

import pandas as pd
import pytest

from src.common.errors import SchemaError
from src.common.schema import WEATHER_TABLE
from src.data.validate import validate_table
from tests.unit.conftest import read_raw_csv

WEATHER_FILE = WEATHER_TABLE.file


@pytest.fixture(scope="module")
def weather(package_dir) -> pd.DataFrame:
    return read_raw_csv(package_dir / WEATHER_FILE, 50)


def test_weather_as_true_false_is_not_a_number(weather):
    validate_table(weather, WEATHER_TABLE, WEATHER_FILE)
    broken = weather.assign(temp=weather["temp"] > 40)  # a spreadsheet's TRUE/FALSE
    with pytest.raises(SchemaError, match=r"column 'temp' should be float, found dtype bool"):
        validate_table(broken, WEATHER_TABLE, WEATHER_FILE)
