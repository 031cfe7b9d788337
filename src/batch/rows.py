"""Flight records checked row by row: the batch job's version of the API's 422s.

The rules are the API's (app/schemas.py), derived from the same declaration
(src/common/schema.py): each request field has its kind, whether it may be missing, its bounds,
its pattern or allowed values, numbers must be finite, text is a number only when written as
one (NUMBER_TEXT) and a boolean never is, and year-month-day must be a date. The API refuses a
whole request when one field is bad; a batch file sets the bad rows aside, each with the first
field that failed (in the declaration's order) and why, and scores the rest.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from src.common.errors import SchemaError
from src.common.schema import NUMBER_TEXT, REQUEST, Column

REJECT_FIELD, REJECT_REASON = "reject_field", "reject_reason"
NUMBER_TEXT_RE = re.compile(NUMBER_TEXT)


@dataclass(frozen=True)
class Checked:
    valid: pd.DataFrame  # rows that passed; request fields in their declared dtypes
    rejects: pd.DataFrame  # rows that failed, as read, plus reject_field and reject_reason
    ok: np.ndarray  # per row of the frame checked: True if it passed


def check_rows(frame: pd.DataFrame, where: str) -> Checked:
    """Split a frame of flight records into valid rows and rejects. A required field missing
    from the frame altogether is the file's fault, not a row's: SchemaError naming `where`."""
    missing = [c.name for c in REQUEST if not c.nullable and c.name not in frame]
    if missing:
        raise SchemaError(f"{where}: required column(s) {missing} missing")
    problems = Problems(len(frame))
    valid = frame.copy(deep=False)
    for col in REQUEST:
        if col.name in frame:
            valid[col.name] = check_column(frame[col.name], col, problems)
    check_dates(valid, problems)
    bad = problems.found
    rejects = frame[bad].assign(
        **{REJECT_FIELD: problems.field[bad], REJECT_REASON: problems.reason[bad]}
    )
    return Checked(valid[~bad] if bad.any() else valid, rejects, ~bad)


class Problems:
    """The first problem found per row: its field and reason (None: no problem yet)."""

    def __init__(self, n: int):
        self.found = np.zeros(n, dtype=bool)
        self.field = np.full(n, None, dtype=object)
        self.reason = np.full(n, None, dtype=object)

    def add(self, mask: np.ndarray, field: str, reasons) -> None:
        """Record `reasons` (one string, or one per row of `mask`) where no problem is yet."""
        new = np.asarray(mask, dtype=bool) & ~self.found
        if not new.any():
            return
        if not isinstance(reasons, str):
            reasons = np.asarray(reasons, dtype=object)[new[mask]]
        self.found |= new
        self.field[new], self.reason[new] = field, reasons


def check_column(values: pd.Series, col: Column, problems: Problems) -> pd.Series:
    """The column in its declared dtype (int64, float64 or object strings); what cannot be
    is recorded in `problems` (the row is set aside, so its value here does not matter)."""
    if col.kind == "str":
        return check_strings(values, col, problems)
    number = as_numbers(values, col, problems)
    present = number.notna().to_numpy()
    x = number.to_numpy(dtype="float64", na_value=np.nan)
    if not col.nullable:
        problems.add(~present, col.name, "missing")
    problems.add(present & ~np.isfinite(np.where(present, x, 0.0)), col.name, "not finite")
    if col.kind == "int":
        problems.add(present & (np.floor(x) != x), col.name, "not a whole number")
    for bound, below in ((col.min, True), (col.max, False)):
        if bound is not None:
            out = present & ((x < bound) if below else (x > bound))
            word = "below the minimum" if below else "above the maximum"
            problems.add(out, col.name, [f"{v:g} is {word} {bound:g}" for v in x[out]])
    if col.kind == "int" and not col.nullable:  # a bad row's 0 is never scored
        fits = present & (np.floor(x) == x) & (np.abs(x) < 2**53)
        whole = np.where(fits, x, 0).astype("int64")
        return pd.Series(whole, index=values.index)
    return pd.Series(x, index=values.index)


def as_numbers(values: pd.Series, col: Column, problems: Problems) -> pd.Series:
    """Numbers as they are; text (a CSV column is all text) read by the API's rule; what is
    not a number, a boolean included, recorded."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values
    number = values.map(as_number, na_action="ignore").astype("float64")
    refused = (values.notna() & number.isna()).to_numpy()
    problems.add(refused, col.name, [f"{v!r} is not a number" for v in values[refused]])
    return number


def as_number(value) -> float:
    """The value as a float: a number, or text written as one (NUMBER_TEXT); NaN otherwise."""
    if isinstance(value, str):
        return float(value) if NUMBER_TEXT_RE.fullmatch(value) else np.nan
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return np.nan


def check_strings(values: pd.Series, col: Column, problems: Problems) -> pd.Series:
    """Strings as they are; anything else recorded. A value is checked once, however many
    rows hold it: a file's carriers, airports and tail numbers repeat on most rows."""
    present = values.notna().to_numpy()
    if not col.nullable:
        problems.add(~present, col.name, "missing")
    pattern = re.compile(col.pattern) if col.pattern else None
    bad = [v for v in pd.unique(values[present]) if string_problem(v, col, pattern)]
    if bad:
        rows = values.isin(bad).to_numpy() & present
        problems.add(rows, col.name, [string_problem(v, col, pattern) for v in values[rows]])
    return values.astype(object).where(present, None)


def string_problem(value, col: Column, pattern: re.Pattern | None) -> str | None:
    if not isinstance(value, str):
        return f"{value!r} is not text"
    if col.allowed and value not in col.allowed:
        return f"{value!r} is not one of {', '.join(col.allowed)}"
    if pattern and not pattern.fullmatch(value):
        return f"{value!r} does not match {col.pattern}"
    return None


def check_dates(valid: pd.DataFrame, problems: Problems) -> None:
    """year-month-day must name a day of the calendar (the API's rule); a row that already
    has a problem keeps it (Problems records the first)."""
    ymd = valid[["year", "month", "day"]]
    not_a_day = pd.to_datetime(ymd, errors="coerce").isna().to_numpy()
    why = [f"{y}-{m:02d}-{d:02d} is not a date" for y, m, d in ymd[not_a_day].to_numpy()]
    problems.add(not_a_day, "day", why)
