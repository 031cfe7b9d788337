"""The one declaration of the data: raw tables, the flight request, features and target.

Raw validation (src/data/validate.py), the API's pydantic models (app/schemas.py), the logged
model's MLflow signature (src/tracking/runs.py) and the drift columns (src/monitoring/drift.py)
are all derived from the declarations below. Kinds are what the public data holds: distance
is whole miles (int64 in the files), weather readings are floats with gaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "int" | "float" | "str" | "datetime"
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    pattern: str | None = None  # regex for strings
    description: str = ""
    allowed: tuple[str, ...] = ()  # strings: the only values taken (empty: any)


# A number written as text (a CSV cell, a JSON string): an optional sign, digits with an
# optional point, an optional exponent. No spaces, NaN, Infinity, hex or digit separators, and
# a boolean is never a number. The API (app/schemas.py) and the batch job's row checks
# (src/batch/rows.py) read text by this one rule.
NUMBER_TEXT = r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?"


@dataclass(frozen=True)
class Table:
    name: str
    file: str  # file name inside the raw snapshot
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()  # columns that must be unique together


CARRIER = Column(
    "carrier", "str", pattern=r"^[A-Z0-9]{2}$", description="IATA airline code, e.g. UA"
)
# The data holds flights out of New York only: the model knows no other origin.
ORIGIN = Column("origin", "str", allowed=("EWR", "JFK", "LGA"), description="Origin airport (FAA)")
DEST = Column("dest", "str", pattern=r"^[A-Z0-9]{3,4}$", description="Destination airport (FAA)")
TAILNUM = Column(
    "tailnum", "str", nullable=True, pattern=r"^[A-Z0-9]{1,8}$", description="Plane tail"
)
YEAR = Column("year", "int", min=2000, max=2100, description="Scheduled departure year (local)")
MONTH = Column("month", "int", min=1, max=12, description="Scheduled departure month (local)")
DAY = Column("day", "int", min=1, max=31, description="Scheduled departure day (local)")
HOUR = Column("hour", "int", min=0, max=23, description="Scheduled departure hour (local)")
MINUTE = Column("minute", "int", min=0, max=59, description="Scheduled departure minute")
DISTANCE = Column("distance", "int", min=1, max=10000, description="Great-circle miles")
TIME_HOUR = Column("time_hour", "datetime", description="Scheduled hour in UTC")

# Observed weather at the origin airport (hourly reports). The upper bound on wind_speed
# is loose on purpose: the raw file holds a 1,048 mph reading that the model cleans (EDA-03).
WEATHER = (
    Column("temp", "float", True, -80, 140, description="Temperature, F"),
    Column("dewp", "float", True, -80, 140, description="Dew point, F"),
    Column("humid", "float", True, 0, 100, description="Relative humidity, %"),
    Column("wind_dir", "float", True, 0, 360, description="Wind direction, degrees"),
    Column("wind_speed", "float", True, 0, 2000, description="Wind speed, mph"),
    Column("wind_gust", "float", True, 0, 2000, description="Gust speed, mph"),
    Column("precip", "float", True, 0, 20, description="Precipitation, inches"),
    Column("pressure", "float", True, 850, 1100, description="Sea level pressure, mbar"),
    Column("visib", "float", True, 0, 100, description="Visibility, miles"),
)

FLIGHTS = Table(
    "flights",
    "flights.csv.zip",
    (
        YEAR,
        MONTH,
        DAY,
        Column("dep_time", "float", True, 1, 2400),
        Column("sched_dep_time", "int", False, 0, 2359),
        Column("dep_delay", "float", True, -1440, 1440),
        Column("arr_time", "float", True, 1, 2400),
        Column("sched_arr_time", "int", False, 0, 2359),
        Column("arr_delay", "float", True, -1440, 1440),
        CARRIER,
        Column("flight", "int", False, 1, 9999),
        TAILNUM,
        ORIGIN,
        DEST,
        Column("air_time", "float", True, 1, 1440),
        DISTANCE,
        HOUR,
        MINUTE,
        TIME_HOUR,
    ),
    key=("year", "month", "day", "carrier", "flight", "origin", "sched_dep_time"),
)
WEATHER_TABLE = Table(
    "weather",
    "weather.csv",
    (ORIGIN, YEAR, MONTH, DAY, HOUR, *WEATHER, TIME_HOUR),
    key=("origin", "time_hour"),  # unique in UTC; the local keys repeat at DST fall-back (EDA-02)
)
PLANES = Table(
    "planes",
    "planes.csv",
    (
        Column("tailnum", "str", pattern=TAILNUM.pattern),
        Column("year", "float", True, 1900, 2100),
        Column("type", "str"),
        Column("manufacturer", "str"),
        Column("model", "str"),
        Column("engines", "int", False, 0, 8),
        Column("seats", "int", False, 1, 1000),
        Column("speed", "float", True, 0, 1000),
        Column("engine", "str"),
    ),
    key=("tailnum",),
)
AIRLINES = Table("airlines", "airlines.csv", (CARRIER, Column("name", "str")), key=("carrier",))
AIRPORTS = Table(
    "airports",
    "airports.csv",
    (
        Column("faa", "str"),
        Column("name", "str"),
        Column("lat", "float", False, -90, 90),
        Column("lon", "float", False, -180, 180),
        Column("alt", "int"),
        Column("tz", "int", False, -12, 14),
        Column("dst", "str"),
        Column("tzone", "str", nullable=True),
    ),
    key=("faa",),
)
RAW_TABLES = (FLIGHTS, WEATHER_TABLE, PLANES, AIRLINES, AIRPORTS)
DELAY_MINUTES = 15  # a flight departing this late or later is delayed (the FAA's definition)


def _known(name: str, description: str, low: float | None, high: float | None) -> Column:
    return Column(name, "float", True, low, high, description=description)


# What the feature store knows of a flight as of a moment before its departure (issue 24):
# src/featurestore/views.py declares the view each comes from, and `<view>_age_s` is the
# age of that view's value at the moment. Optional in a request: a caller bringing its own
# features may leave any out, and the model reads a missing one as missing.
LEAD_HOURS = _known("lead_hours", "Hours from the prediction's moment to the departure", 0, 8760)
TIMETABLE_FIELDS = (
    _known("origin_hour_scheduled", "Departures scheduled at the origin that hour", 0, 1000),
    _known("origin_day_scheduled", "Departures scheduled at the origin that local day", 0, 5000),
    _known("carrier_day_scheduled", "The carrier's departures there that day", 0, 5000),
    _known("plane_leg", "The plane's NYC departure of its local day: 1, 2, ...", 1, 100),
    _known("plane_turnaround_min", "Minutes since the plane's previous leg that day", 0, 1440),
)
PLANE_LAST_LEG_FIELDS = (
    _known("plane_last_dep_delay", "Delay of the plane's latest departure, minutes", -1440, 1440),
)
AIRPORT_STATE_FIELDS = (
    _known("airport_departed_2h", "Departures from the origin in the 2 hours up to now", 0, 1e4),
    _known("airport_mean_delay_2h", "Their mean departure delay, minutes", -1440, 1440),
    _known("airport_share_delayed_2h", f"Their share {DELAY_MINUTES}+ minutes late", 0, 1),
    _known("airport_overdue_2h", "Flights due there in the 2 hours up to now, not left", 0, 1e4),
)
AGES = tuple(
    _known(f"{view}_age_s", f"Seconds since the {view} value was observed", 0, None)
    for view in ("weather", "plane_last_leg", "airport_state")
)
STORE_FIELDS = (LEAD_HOURS, *TIMETABLE_FIELDS, *PLANE_LAST_LEG_FIELDS, *AIRPORT_STATE_FIELDS, *AGES)

# What a caller sends to score one flight: the schedule, the origin's latest weather
# observation as of the prediction's moment, and what the store knows then (all optional).
# The model derives every feature from these fields (src/model/features.py).
REQUEST = (
    *(YEAR, MONTH, DAY, HOUR, MINUTE, CARRIER, ORIGIN, DEST, DISTANCE, TAILNUM),
    *WEATHER,
    *STORE_FIELDS,
)
REQUEST_FIELDS = tuple(c.name for c in REQUEST)
OPTIONAL_FIELDS = tuple(c.name for c in REQUEST if c.nullable)  # may be left out: missing

# What the API accepts: REQUEST plus the flight number, which the model never reads. With it
# a logged prediction can be joined, once the flight has left, with its observed delay: the
# carrier's flight number, date and origin name one departure (OUTCOME_KEY is unique in the
# flights table). The MLflow signature stays REQUEST: the logged model's own contract.
FLIGHT_NUMBER = Column(
    "flight",
    "int",
    nullable=True,
    min=1,
    max=9999,
    description="Flight number (optional): joins the prediction with the observed delay later",
)
API_REQUEST = (*REQUEST, FLIGHT_NUMBER)
API_REQUEST_FIELDS = tuple(c.name for c in API_REQUEST)
OUTCOME_KEY = ("year", "month", "day", "carrier", "flight", "origin")

# The documented example (an August evening departure EWR -> ORD): the API docs, the
# README, `python -m src.serve --check`.
EXAMPLE_FLIGHT: dict[str, Any] = {
    "year": 2013,
    "month": 8,
    "day": 15,
    "hour": 17,
    "minute": 30,
    "carrier": "UA",
    "origin": "EWR",
    "dest": "ORD",
    "distance": 719,
    "tailnum": "N14228",
    "temp": 78.1,
    "dewp": 62.1,
    "humid": 57.6,
    "wind_dir": 200.0,
    "wind_speed": 11.5,
    "wind_gust": None,
    "precip": 0.0,
    "pressure": 1015.2,
    "visib": 10.0,
}

TARGET = "delayed"  # dep_delay >= DELAY_MINUTES (the FAA's definition)
PREDICTION = "delay_probability"

# Every feature the model's code builds from REQUEST (EDA-06), in the default order. A model's
# own list (config `train.features`) is recorded in its file: src/model/features.py.
CATEGORICAL_FEATURES = ("carrier", "origin", "dest", "manufacturer")
NUMERIC_FEATURES = (
    "distance",
    "hour",
    "minute",
    "day_of_week",
    "days_to_holiday",
    "abs_days_to_holiday",
    "plane_age",
    "seats",
    "engines",
    *(c.name for c in WEATHER),
    *(c.name for c in STORE_FIELDS),
)
FEATURES = CATEGORICAL_FEATURES + NUMERIC_FEATURES
