"""The Flight page's what-if: the record the API scored a flight on (GET /flights with
`?features=true`), some of its fields changed by a person, scored again by POST /predict.
Plain functions of records and probabilities; no Streamlit here."""

from __future__ import annotations

from typing import Any

# The fields a person may change, by their names in POST /predict's body (REQUEST in
# src/common/schema.py): label and the input's step. The hour is the scheduled departure's,
# New York time; the weather is the origin's latest observation. No bounds here: the API's
# are the rule, and a value it refuses comes back as a 422 naming the field.
HOUR = "hour"
CONTROLS: dict[str, tuple[str, float]] = {
    HOUR: ("Scheduled hour (New York)", 1),
    "precip": ("Precipitation, inches", 0.01),
    "visib": ("Visibility, miles", 0.5),
    "wind_speed": ("Wind speed, mph", 1.0),
    "temp": ("Temperature, °F", 1.0),
}


def initial(record: dict[str, Any], field: str) -> float | int | None:
    """A control's first value: the record's, as the input holds it (the hour a whole
    number, the weather a float, None when the store had no reading)."""
    value = record.get(field)
    if value is None:
        return None
    return int(value) if field == HOUR else float(value)


def changed(record: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """`record` with `values` in place, and without the flight number: a what-if is not the
    flight, and a logged prediction that names it would be joined with the flight's
    observed delay (src/monitoring/outcomes.py) as if it were."""
    return {**{k: v for k, v in record.items() if k != "flight"}, **values}


def changes(record: dict[str, Any], values: dict[str, Any]) -> list[str]:
    """What differs from the record, in the controls' words: "Visibility, miles: 10.0 → 2.0"."""
    return [
        f"{CONTROLS[f][0]}: {shown(record.get(f))} → {shown(v)}"
        for f, v in values.items()
        if v != initial(record, f)
    ]


def shown(value: Any) -> str:
    return "no reading" if value is None else str(value)


def points(new: float, old: float) -> str:
    """The move between two probabilities in percentage points: "+3.6 points"."""
    return f"{100 * (new - old):+.1f} points"
