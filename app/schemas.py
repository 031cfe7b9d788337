"""Request/response models, derived from the shared schema declaration (src/common/schema.py)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from src.common.schema import REQUEST, Column

_TYPES = {"int": int, "float": float, "str": str}
EXAMPLE_FLIGHT = {
    "year": 2013,
    "month": 8,
    "day": 15,
    "hour": 17,
    "minute": 30,
    "carrier": "UA",
    "origin": "EWR",
    "dest": "ORD",
    "distance": 719.0,
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


def _field(col: Column):
    kind = _TYPES[col.kind]
    constraints = {"description": col.description}
    if col.min is not None:
        constraints["ge"] = col.min
    if col.max is not None:
        constraints["le"] = col.max
    if col.pattern:
        constraints["pattern"] = col.pattern
    if col.nullable:
        return (kind | None, Field(None, **constraints))
    return (kind, Field(..., **constraints))


class _FlightBase(BaseModel):
    """One scheduled departure and the origin's weather at the scheduled hour."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_FLIGHT]})

    @model_validator(mode="after")
    def _date_exists(self):
        try:
            date(self.year, self.month, self.day)
        except ValueError:
            raise ValueError(
                f"day: {self.year}-{self.month:02d}-{self.day:02d} is not a date"
            ) from None
        return self


Flight = create_model("Flight", __base__=_FlightBase, **{c.name: _field(c) for c in REQUEST})


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flights: list[Flight] = Field(..., min_length=1)  # type: ignore[valid-type]


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


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str
    source: str  # "registry" or "export"
    run_id: str | None
    loaded_at: str
    metadata: dict
