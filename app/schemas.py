"""Request and response models. The flight fields are derived from the one schema declaration
(src/common/schema.py): types, bounds, patterns, allowed values, which fields are optional.
FastAPI parses every body with these models; a bad field is a 422 that names it. A request
holds the API's fields (API_REQUEST): the model's own (REQUEST) plus the optional flight
number, which only the prediction log keeps.

A number field takes a JSON number or text written as one (NUMBER_TEXT), never a boolean; an
int field takes a whole float as an int. The batch job's row checks (src/batch/rows.py) apply
the same rule. A body's errors stay few whatever its size: a list stops at its first bad item
(fail_fast), and past MAX_ERRORS unknown keys in one object they are one error."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from fastapi import Path, Query
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from src.common.schema import (
    API_REQUEST,
    API_REQUEST_FIELDS,
    CARRIER,
    EXAMPLE_FLIGHT,
    FLIGHT_NUMBER,
    NUMBER_TEXT,
    ORIGIN,
    YEAR,
    Column,
)

MAX_ERRORS = 20  # the most errors a 422 lists (app/main.py); its count says how many in all
_TYPES = {"int": int, "float": float, "str": str}
NUMBER_TEXT_RE = re.compile(NUMBER_TEXT)
NUMBER_KINDS = {c.name: c.kind for c in API_REQUEST if c.kind in ("int", "float")}
# The Python types a number field's value may have as it is (JSON decoded).
AS_IS: dict[str, set[type]] = {"int": {int, type(None)}, "float": {int, float, type(None)}}


def _type(col: Column) -> Any:
    """The field's type: its allowed values, or its kind (numbers strict: no bool, no text)."""
    if col.allowed:
        return Literal[col.allowed]
    return Annotated[_TYPES[col.kind], Strict()] if col.kind in AS_IS else _TYPES[col.kind]


def _constraints(col: Column) -> dict:
    """Bounds and pattern from the schema; floats must be finite (NaN and Infinity parse as
    JSON here, and a probability computed from them means nothing)."""
    bounds = {"ge": col.min, "le": col.max, "pattern": col.pattern}
    if col.kind == "float":
        bounds["allow_inf_nan"] = False
    return {k: v for k, v in bounds.items() if v is not None}


def _field(col: Column):
    kind = _type(col)
    if col.nullable:
        return (kind | None, Field(None, description=col.description, **_constraints(col)))
    return (kind, Field(..., description=col.description, **_constraints(col)))


def _column(col: Column):
    """The same field as a list of values (the columnar batch body)."""
    kind = _type(col)
    # Built at run time from the schema: a value for pydantic, no type mypy could check.
    item: Any = Annotated[kind | None if col.nullable else kind, Field(**_constraints(col))]
    if col.nullable:
        described = f"{col.description} (may be omitted)"
        return (list[item] | None, Field(None, fail_fast=True, description=described))
    return (list[item], Field(..., min_length=1, fail_fast=True, description=col.description))


def number_read(value: Any, kind: str) -> Any:
    """A number field's value by the rule: text written as a number read as one, a whole float
    given to an int field as an int; anything else as it is, for the strict type to refuse."""
    if type(value) is str and NUMBER_TEXT_RE.fullmatch(value):
        value = float(value)
    if kind == "int" and type(value) is float and value.is_integer():
        return int(value)
    return value


def numbers_read(values: Any, kind: str) -> Any:
    """A column's values by the rule, up to the first that is still not a number, where its
    validation stops (fail_fast)."""
    if not isinstance(values, list):
        return values
    read = []
    for value in values:
        read.append(number_read(value, kind))
        if type(read[-1]) not in AS_IS[kind]:
            return read + values[len(read) :]
    return read


def _check_date(year: int, month: int, day: int, where: str) -> None:
    try:
        date(year, month, day)
    except ValueError:
        raise ValueError(f"{where}: {year}-{month:02d}-{day:02d} is not a date") from None


class _Closed(BaseModel):
    """Unknown keys refused. The types are strict: a body they refuse is checked again with its
    number fields read by the rule (`read_value`), so the usual body costs no Python per value.
    Past MAX_ERRORS unknown keys, one error names the first few and counts them."""

    model_config = ConfigDict(extra="forbid")
    read_value: ClassVar[Any] = None  # (value or column, kind) -> read; None: no numbers

    @model_validator(mode="wrap")
    @classmethod
    def _checked(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(data)
        except ValidationError:
            if not isinstance(data, dict):
                raise
            unknown = [key for key in data if key not in cls.model_fields]
            if len(unknown) > MAX_ERRORS:
                first = ", ".join(map(repr, unknown[:5]))
                raise PydanticCustomError(
                    "extra_forbidden",
                    "{count} unknown fields (the first: {first})",
                    {"count": len(unknown), "first": first},
                ) from None
            if cls.read_value is None:
                raise
            kinds = NUMBER_KINDS
            return handler(
                {k: cls.read_value(v, kinds[k]) if k in kinds else v for k, v in data.items()}
            )


class _FlightBase(_Closed):
    """One scheduled departure and the origin's weather at the scheduled hour."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_FLIGHT]})

    if TYPE_CHECKING:  # fields create_model adds below (all of API_REQUEST); the checks read these
        year: int
        month: int
        day: int

    read_value = staticmethod(number_read)

    @model_validator(mode="after")
    def _date_exists(self):
        _check_date(self.year, self.month, self.day, "day")
        return self


class _ColumnsBase(_Closed):
    """Flights as columns: each field a list, all of one length; optional ones may be left out."""

    read_value = staticmethod(numbers_read)

    if TYPE_CHECKING:  # as in _FlightBase
        year: list[int]
        month: list[int]
        day: list[int]

    @model_validator(mode="after")
    def _aligned_dates(self):
        n = len(self.year)
        for name in API_REQUEST_FIELDS:
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise ValueError(f"{name}: {len(values)} values, expected {n} (as many as year)")
        for i, ymd in enumerate(zip(self.year, self.month, self.day, strict=True)):
            _check_date(*ymd, f"day[{i}]")
        return self


Flight = create_model("Flight", __base__=_FlightBase, **{c.name: _field(c) for c in API_REQUEST})
FlightColumns = create_model(
    "FlightColumns", __base__=_ColumnsBase, **{c.name: _column(c) for c in API_REQUEST}
)


class BatchRequest(_Closed):
    """Either `flights` (a list of flight records) or `columns` (one list per field)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"flights": [EXAMPLE_FLIGHT]},
                {"columns": {k: [v] for k, v in EXAMPLE_FLIGHT.items() if v is not None}},
            ]
        },
    )
    flights: list[Flight] | None = Field(None, min_length=1, fail_fast=True)
    columns: FlightColumns | None = None

    @model_validator(mode="after")
    def _one_shape(self):
        if (self.flights is None) == (self.columns is None):
            raise ValueError("give exactly one of `flights` (records) or `columns`")
        return self

    def as_columns(self) -> dict[str, list]:
        """The flights as columns of every API_REQUEST field (the model reads its own and
        ignores the flight number); an omitted optional column is missing."""
        if self.flights is not None:
            return {f: [getattr(fl, f) for fl in self.flights] for f in API_REQUEST_FIELDS}
        assert self.columns is not None  # _one_shape: exactly one of the two is given
        n = len(self.columns.year)
        given = {f: getattr(self.columns, f) for f in API_REQUEST_FIELDS}
        return {f: [None] * n if values is None else values for f, values in given.items()}


class Prediction(BaseModel):
    delay_probability: float = Field(..., description="Probability of departing 15+ minutes late")
    delayed: bool = Field(..., description="delay_probability >= threshold")


class Reason(BaseModel):
    group: str = Field(..., description='A group of features, e.g. "the airport\'s last two hours"')
    value: float = Field(
        ..., description="The group's contribution to the raw score: logit units, + towards delayed"
    )
    text: str = Field(..., description='The same for people, e.g. "the timetable: +0.42"')


class Explanation(BaseModel):
    """Why the flight scored as it did (`?explain=true`): LightGBM's exact per-feature
    contributions (TreeSHAP) summed by group. They explain the booster's raw score, the logit
    before calibration: delay_probability is the calibrator applied to sigmoid(raw_score)."""

    base: float = Field(..., description="The raw score before any feature is known (logit)")
    raw_score: float = Field(..., description="base + every group's value: the booster's logit")
    reasons: list[Reason] = Field(
        ..., description="The groups with the largest contributions, by absolute value"
    )


class PredictionResponse(Prediction):
    request_id: str
    threshold: float
    model_name: str
    model_version: str
    explanation: Explanation | None = Field(
        None, description="Only with ?explain=true: why the flight scored as it did"
    )


# GET /flights/{carrier}/{number}/{day}: a flight as a passenger knows it.
CarrierCode = Annotated[str, Path(pattern=CARRIER.pattern, description=CARRIER.description)]
FlightNumber = Annotated[
    int, Path(ge=FLIGHT_NUMBER.min, le=FLIGHT_NUMBER.max, description="Flight number, e.g. 236")
]
LocalDate = Annotated[
    date,
    Path(
        ge=date(int(YEAR.min or 1), 1, 1),  # the years a request may name
        le=date(int(YEAR.max or 9999), 12, 31),
        description="Scheduled departure date, New York time (YYYY-MM-DD)",
    ),
]
if TYPE_CHECKING:
    OriginCode = str
else:
    OriginCode = Literal[ORIGIN.allowed]
OriginChoice = Annotated[
    OriginCode | None,
    Query(description="The NYC airport, when the flight number leaves from two that day"),
]


ExplainFlag = Annotated[
    bool,
    Query(description="Add an `explanation`: the groups of features that moved the score most"),
]
FeaturesFlag = Annotated[
    bool,
    Query(
        description="Add `features`: the record scored, POST /predict's body as the store had it"
    ),
]


class ScheduledFlight(BaseModel):
    """A departure as the timetable holds it: GET /flights' and GET /departures' fields."""

    carrier: str
    flight: int
    origin: str
    dest: str | None
    sched_dep: datetime = Field(..., description="Scheduled departure, UTC")


class FlightPrediction(PredictionResponse, ScheduledFlight):
    """POST /predict's answer for a flight found in the online feature store, and what it
    was scored on: the store's features as of its clock."""

    as_of: datetime = Field(..., description="The store's clock: the features are as of it (UTC)")
    lead_hours: float = Field(..., description="Hours from as_of to the scheduled departure")
    feature_age_s: dict[str, float | None] = Field(
        ...,
        description="Per feature view: seconds from its value's event time to as_of (null: none)",
    )
    # The record as it is, not parsed again as a Flight: what was scored is what comes back.
    features: dict[str, int | float | str | None] | None = Field(
        None,
        description="Only with ?features=true: the record scored (POST /predict's fields as the "
        "store had them at as_of); POST it changed for a what-if",
    )


class FlightProblem(BaseModel):
    """Why a flight was not scored (404, 409, 503)."""

    detail: str
    origins: list[str] | None = Field(None, description="409: the airports to choose from")
    departed: datetime | None = Field(None, description="409: when it left (UTC)")
    dep_delay: float | None = Field(None, description="409: its departure delay, minutes")


# GET /departures/{origin}: an airport's departures board.
BOARD_MAX_HOURS = 24  # a day: 350-380 departures from the busiest airport (EWR)
BoardOrigin = Annotated[OriginCode, Path(description="The NYC airport: EWR, JFK or LGA")]
_START = TypeAdapter(datetime | time)


def _window_start(value: Any) -> Any:
    """A moment (ISO 8601; New York time when it has no zone) or a New York time of day
    (HH:MM), refused in one sentence otherwise."""
    if value is None or isinstance(value, datetime | time):
        return value
    refused = ValueError(
        f"{value!r} is neither a moment (2013-08-15T20:00, New York time unless it "
        "has a zone) nor a time of day (20:00, New York, on the clock's date)"
    )
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise refused  # pydantic reads a bare number as Unix seconds: not a form we offer
    try:
        parsed = _START.validate_python(value)
    except ValidationError:
        raise refused from None
    if isinstance(parsed, time) and parsed.tzinfo is not None:
        raise ValueError(f"{value!r}: a time of day is New York's; give a moment for a zone")
    low, high = int(YEAR.min or 1), int(YEAR.max or 9999)
    if isinstance(parsed, datetime) and not low <= parsed.year <= high:
        raise ValueError(f"{value!r}: the year must be {low} to {high}")
    return parsed


WindowStart = Annotated[
    datetime | time | None,
    BeforeValidator(_window_start),
    Query(
        description="The window's first scheduled departure: a moment (2013-08-15T20:00, "
        "New York time unless it has a zone) or a time of day (20:00, New York, on the "
        "store clock's date); default: the store's clock"
    ),
]
WindowHours = Annotated[
    float,
    Query(gt=0, le=BOARD_MAX_HOURS, description="The window's length in hours (at most a day)"),
]


class Departure(ScheduledFlight):
    """One departure on the board: its status at the store's clock, and for one still to
    leave, its probability as GET /flights gives it."""

    sched_dep_local: datetime = Field(..., description="Scheduled departure, New York time")
    status: Literal["scheduled", "departed", "overdue"] = Field(
        ...,
        description="At the clock: scheduled (still to leave: scored), departed, or overdue "
        "(due before the clock and not left: late or cancelled)",
    )
    departed: datetime | None = Field(None, description="departed: when it left (UTC)")
    dep_delay: float | None = Field(None, description="departed: its delay, minutes")
    delay_probability: float | None = Field(None, description="scheduled: as GET /flights")
    delayed: bool | None = Field(None, description="scheduled: delay_probability >= threshold")
    lead_hours: float | None = Field(None, description="scheduled: hours from as_of to sched_dep")


class DeparturesBoard(BaseModel):
    """The departures from an origin scheduled in [start, end), in time order; the ones
    still to leave scored in one batch on the store's features as of its clock."""

    request_id: str
    origin: str
    start: datetime = Field(..., description="The window's first moment (UTC)")
    end: datetime = Field(..., description="The window's end, not included (UTC)")
    as_of: datetime = Field(..., description="The store's clock: the board is as of it (UTC)")
    threshold: float
    model_name: str
    model_version: str
    flights: list[Departure]


class BatchResponse(BaseModel):
    request_id: str
    threshold: float
    model_name: str
    model_version: str
    predictions: list[Prediction]


class RegistryInfo(BaseModel):
    reachable: bool | None = Field(..., description="null until the first poll")
    checked_at: str | None
    error: str | None
    reloads: list[dict] = Field(..., description="recent model swaps: from, to, at")


SHADOW_VERSION = Field(
    ..., description="the @challenger version scored in the shadow of every request; null: none"
)


class ReadyResponse(BaseModel):
    status: str
    model_version: str
    source: str = Field(..., description='"registry", or "export" (models/champion/)')
    shadow_version: str | None = SHADOW_VERSION
    registry: RegistryInfo


class ModelLineage(BaseModel):
    """A served model: which version, and where it came from."""

    name: str
    version: str
    alias: str
    source: str = Field(..., description='"registry", or "export" (models/champion/)')
    run_id: str | None
    data_manifest_sha256: str | None
    git_commit: str | None
    metrics: dict[str, float]
    loaded_at: str


class ModelInfo(ModelLineage):
    shadow_version: str | None = SHADOW_VERSION
    registry: RegistryInfo
    metadata: dict
    challenger: ModelLineage | None = Field(
        None, description="the @challenger scored in the shadow, with its lineage; null: none"
    )
