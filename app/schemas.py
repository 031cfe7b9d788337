"""Request and response models. The flight fields are derived from the one schema declaration
(src/common/schema.py): types, bounds, patterns, which fields are optional. FastAPI parses
every body with these models; a bad field is a 422 that names it. A request holds the API's
fields (API_REQUEST): the model's own (REQUEST) plus the optional flight number, which only
the prediction log keeps."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from src.common.schema import API_REQUEST, API_REQUEST_FIELDS, EXAMPLE_FLIGHT, Column

_TYPES = {"int": int, "float": float, "str": str}


def _constraints(col: Column) -> dict:
    """Bounds and pattern from the schema; floats must be finite (NaN and Infinity parse as
    JSON here, and a probability computed from them means nothing)."""
    bounds = {"ge": col.min, "le": col.max, "pattern": col.pattern}
    if col.kind == "float":
        bounds["allow_inf_nan"] = False
    return {k: v for k, v in bounds.items() if v is not None}


def _field(col: Column):
    kind = _TYPES[col.kind]
    if col.nullable:
        return (kind | None, Field(None, description=col.description, **_constraints(col)))
    return (kind, Field(..., description=col.description, **_constraints(col)))


def _column(col: Column):
    """The same field as a list of values (the columnar batch body)."""
    kind = _TYPES[col.kind]
    # Built at run time from the schema: a value for pydantic, no type mypy could check.
    item: Any = Annotated[kind | None if col.nullable else kind, Field(**_constraints(col))]
    if col.nullable:
        return (list[item] | None, Field(None, description=f"{col.description} (may be omitted)"))
    return (list[item], Field(..., min_length=1, description=col.description))


def _check_date(year: int, month: int, day: int, where: str) -> None:
    try:
        date(year, month, day)
    except ValueError:
        raise ValueError(f"{where}: {year}-{month:02d}-{day:02d} is not a date") from None


class _FlightBase(BaseModel):
    """One scheduled departure and the origin's weather at the scheduled hour."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_FLIGHT]})

    if TYPE_CHECKING:  # fields create_model adds below (all of API_REQUEST); the checks read these
        year: int
        month: int
        day: int

    @model_validator(mode="after")
    def _date_exists(self):
        _check_date(self.year, self.month, self.day, "day")
        return self


class _ColumnsBase(BaseModel):
    """Flights as columns: each field a list, all of one length; optional ones may be left out."""

    model_config = ConfigDict(extra="forbid")

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


class BatchRequest(BaseModel):
    """Either `flights` (a list of flight records) or `columns` (one list per field)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"flights": [EXAMPLE_FLIGHT]},
                {"columns": {k: [v] for k, v in EXAMPLE_FLIGHT.items() if v is not None}},
            ]
        },
    )
    flights: list[Flight] | None = Field(None, min_length=1)
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


class PredictionResponse(Prediction):
    request_id: str
    threshold: float
    model_name: str
    model_version: str


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


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str
    source: str = Field(..., description='"registry", or "export" (models/champion/)')
    run_id: str | None
    data_manifest_sha256: str | None
    git_commit: str | None
    metrics: dict[str, float]
    loaded_at: str
    shadow_version: str | None = SHADOW_VERSION
    registry: RegistryInfo
    metadata: dict
