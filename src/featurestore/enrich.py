"""Flights known by their keys, enriched from the offline store as training builds them: the
batch job's `--enrich` (src/predict.py), the offline counterpart of looking one flight up in
the online store.

Each row names a departure by its carrier, flight number and New York date (`date`,
YYYY-MM-DD), and optionally its origin. The departure is found in the timetable view (the
local date is the New York date of its scheduled departure), given a moment (the scheduled
departure less a lead, or a moment of the row's own), joined with every view as of that
moment (`offline.as_of`), and becomes the REQUEST record: the local schedule, the
timetable's flight and the store's fields, as `training.labelled_examples` makes them.

A row that names no departure, or two, or whose moment is not before the flight left, is
rejected with its field and reason, never a crash."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd

from src.common.errors import SchemaError
from src.common.schema import REQUEST, REQUEST_FIELDS
from src.featurestore.offline import as_of
from src.featurestore.views import DEPARTURE, NEW_YORK, TIMETABLE

KEYS = ("carrier", "flight", "date")  # required; the origin is optional
ORIGIN = "origin"
SCHEDULED, MOMENT = "sched_dep", "as_of"  # added to every record (UTC); MOMENT with a lead
# The input's key fields that are also request fields: the record's own replace them.
KEY_FIELDS = ("carrier", ORIGIN)
LOCAL = ("year", "month", "day", "hour", "minute")
FLOATS = [c.name for c in REQUEST if c.kind == "float"]
INTS = [c.name for c in REQUEST if c.kind == "int"]
# A moment in text: ISO 8601 with a zone (Z or an offset): a bare time would be a guess.
ZONED = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)")


@dataclass(frozen=True)
class Enriched:
    records: pd.DataFrame  # rows found: REQUEST fields, sched_dep (and as_of with a lead)
    rejects: pd.DataFrame  # rows not: `field`, `reason`
    # Both are indexed by the row's position in the keys (0-based), in that order.


def check_columns(names: list[str], as_of_column: str | None, where: str) -> None:
    """A keys file's own faults, found from its columns: a key missing, the moment's column
    missing, or a column the enrichment fills (SchemaError naming `where`)."""
    missing = [k for k in KEYS if k not in names]
    if missing:
        raise SchemaError(
            f"{where}: required column(s) {missing} missing (--enrich reads carrier, flight,"
            " date as YYYY-MM-DD, and optionally origin)"
        )
    if as_of_column is not None and as_of_column not in names:
        raise SchemaError(f"{where}: no column '{as_of_column}' (--as-of-column)")
    filled = {f for f in REQUEST_FIELDS if f not in KEY_FIELDS} | {SCHEDULED}
    if as_of_column is None:
        filled.add(MOMENT)
    clash = [n for n in names if n in filled]
    if clash:
        raise SchemaError(f"{where}: column(s) {clash} are filled by --enrich: drop or rename them")


def enrich(
    keys: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    lead_hours: float | None = None,
    as_of_column: str | None = None,
) -> Enriched:
    """Each row of `keys` (carrier, flight, date and optionally origin; see check_columns)
    as of `lead_hours` before its scheduled departure, or as of the UTC moment in its
    `as_of_column` (one of the two). `tables`: the offline store (`offline.load_views`);
    the departure view, when there, rejects a flight that had left by its moment."""
    if (lead_hours is None) == (as_of_column is None):
        raise ValueError("enrich: give lead_hours or as_of_column, not both or neither")
    keys = keys.reset_index(drop=True)
    problems = Problems(len(keys))
    carrier = texts(keys["carrier"])
    problems.add(carrier.isna(), "carrier", "missing")
    flight = flight_numbers(keys["flight"], problems)
    day = local_dates(keys["date"], problems)
    origin = texts(keys[ORIGIN]) if ORIGIN in keys else pd.Series(None, keys.index, object)
    wanted = pd.DataFrame({"carrier": carrier, "flight": flight, "date": day, "origin": origin})
    field = as_of_column or MOMENT
    moment = None if as_of_column is None else moments(keys[as_of_column], field, problems)
    found = find(wanted[~problems.found], tables[TIMETABLE.name], problems)
    if moment is None:
        found[MOMENT] = found[SCHEDULED] - pd.Timedelta(hours=lead_hours)
    else:
        found[MOMENT] = moment[found.index]
    found = found[~before_it_left(found, tables.get(DEPARTURE.name), field, problems)]
    # as_of joins the feature views only: the departure view never reaches a record.
    records = request_records(as_of(found, tables), with_moment=as_of_column is None)
    return Enriched(records, problems.table())


class Problems:
    """The first problem of each row: its field and reason."""

    def __init__(self, n: int):
        self.found = np.zeros(n, dtype=bool)
        self.field = np.full(n, None, dtype=object)
        self.reason = np.full(n, None, dtype=object)

    def add(self, rows, field: str, reasons) -> None:
        """Rows (a boolean mask over every row, or positions) get `reasons` (one text, or one
        per row), unless an earlier problem was found."""
        at = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, int)
        reasons = np.broadcast_to(np.asarray(reasons, dtype=object), at.shape)
        new = ~self.found[at]
        self.found[at[new]] = True
        self.field[at[new]] = field
        self.reason[at[new]] = reasons[new]

    def table(self) -> pd.DataFrame:
        rows = np.flatnonzero(self.found)
        return pd.DataFrame(
            {"field": self.field[rows], "reason": self.reason[rows]}, index=pd.Index(rows)
        )


def texts(values: pd.Series) -> pd.Series:
    """Text cells as they are; a missing or empty one as None."""
    out = values.astype(object).where(values.notna(), None)
    return out.map(lambda v: None if v is None or str(v) == "" else str(v))


def flight_numbers(values: pd.Series, problems: Problems) -> pd.Series:
    """Whole numbers 1-9999 (text from a CSV file, numbers from Parquet), as int64."""
    number = pd.to_numeric(values.map(lambda v: None if isinstance(v, bool) else v),
                           errors="coerce")  # fmt: skip
    good = number.notna() & (number % 1 == 0) & number.between(1, 9999)
    problems.add(values.isna(), "flight", "missing")
    bad = ~good & values.notna()
    problems.add(bad, "flight", [f"{v!r} is not a flight number (1-9999)" for v in values[bad]])
    return number.where(good, 0).astype("int64")


def local_dates(values: pd.Series, problems: Problems) -> pd.Series:
    """New York dates: text YYYY-MM-DD (a CSV file's) or a Parquet date column's values, as
    midnight datetimes (to match the timetable's local dates)."""
    text = values.map(lambda v: v.isoformat() if is_date(v) else v)
    text = text.where(text.map(lambda v: isinstance(v, str)), None)
    day = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    problems.add(values.isna(), "date", "missing")
    bad = day.isna() & values.notna()
    problems.add(bad, "date", [f"{v!r} is not a date (YYYY-MM-DD)" for v in values[bad]])
    return day.astype("datetime64[ns]")


def is_date(value) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)


def moments(values: pd.Series, field: str, problems: Problems) -> pd.Series:
    """UTC instants: a Parquet column of zoned timestamps, or ISO 8601 text with a zone
    (2013-03-05T10:00Z, ...-05:00). A moment without a zone is refused, not guessed."""
    problems.add(values.isna(), field, "missing")
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.as_unit("ns")
    text = values.where(values.map(lambda v: isinstance(v, str)), "")
    zoned = text.str.fullmatch(ZONED)
    at = pd.to_datetime(text.where(zoned), utc=True, format="ISO8601", errors="coerce")
    bad = at.isna() & values.notna()
    reasons = [f"{v!r} is not a moment with a zone (e.g. 2013-03-05T10:00Z)" for v in values[bad]]
    problems.add(bad, field, reasons)
    return at.dt.as_unit("ns")


def find(wanted: pd.DataFrame, timetable: pd.DataFrame, problems: Problems) -> pd.DataFrame:
    """The one departure each row names: (carrier, flight, origin, sched_dep, published),
    indexed by the row's position. None or two: the row is rejected, saying which."""
    local = timetable[SCHEDULED].dt.tz_convert(NEW_YORK).dt.tz_localize(None).dt.normalize()
    table = timetable[["carrier", "flight", "origin", SCHEDULED, "published"]].assign(date=local)
    rows = wanted.rename_axis("_row").reset_index()
    match = rows.merge(table, on=["carrier", "flight", "date"], suffixes=("_wanted", ""))
    given = match["origin_wanted"]
    match = match[given.isna() | (given == match["origin"])]
    count = match.groupby("_row").size().reindex(rows["_row"], fill_value=0)
    none = count.index[count.to_numpy() == 0]
    problems.add(none, "flight", [not_found(wanted.loc[r]) for r in none])
    many = match[match["_row"].map(count) > 1].sort_values(["_row", SCHEDULED, "origin"])
    for row, departures in many.groupby("_row"):
        problems.add([row], *several(wanted.loc[row], departures))
    one = match[match["_row"].map(count) == 1].set_index("_row").rename_axis(None)
    return one[["carrier", "flight", "origin", SCHEDULED, "published"]].copy()


def name(row: pd.Series) -> str:
    return f"{row['carrier']} {row['flight']} on {row['date']:%Y-%m-%d}"


def not_found(row: pd.Series) -> str:
    where = f" from {row['origin']}" if pd.notna(row["origin"]) else ""
    return f"no flight {name(row)}{where} in the timetable"


def several(row: pd.Series, departures: pd.DataFrame) -> tuple[str, str]:
    """The field and reason for a row that names more than one departure."""
    each = [
        (o, f"{s.tz_convert(NEW_YORK):%H:%M}")
        for o, s in zip(departures["origin"], departures[SCHEDULED], strict=True)
    ]
    if departures["origin"].nunique() > 1:
        leaves = " and ".join(f"from {o} at {t}" for o, t in each)
        return ORIGIN, f"{name(row)} leaves {leaves} (New York time): give the row its origin"
    times = " and ".join(t for _, t in each)
    return "flight", f"{name(row)} leaves {each[0][0]} at {times} (New York time): which one?"


def before_it_left(
    found: pd.DataFrame, departure: pd.DataFrame | None, field: str, problems: Problems
) -> np.ndarray:
    """Rejects (and returns as a mask over `found`) the rows whose moment is not before the
    flight left: at or after its scheduled departure, or after it left early (the departure
    view). The state views would hold its own departure, and a flight is scored before it
    leaves. Also a moment before the timetable held the flight (it was not known yet)."""
    at, sched = found[MOMENT], found[SCHEDULED]
    late = (at >= sched).to_numpy()
    problems.add(
        found.index[late], field,
        [f"the moment {iso(a)} is not before the scheduled departure {iso(s)}: a flight is"
         " scored before it leaves" for a, s in zip(at[late], sched[late], strict=True)],
    )  # fmt: skip
    unknown = (at < found["published"]).to_numpy()
    problems.add(
        found.index[unknown], field,
        [f"as of {iso(a)} the timetable does not hold the flight yet (published {iso(p)})"
         for a, p in zip(at[unknown], found["published"][unknown], strict=True)],
    )  # fmt: skip
    gone = np.zeros(len(found), dtype=bool)
    if departure is not None:
        keys = list(DEPARTURE.entities)
        left = found[keys].merge(departure[[*keys, "departed"]], on=keys, how="left")
        departed = left["departed"].set_axis(found.index)
        gone = (departed <= at).to_numpy() & ~late  # NaT (cancelled, unknown) compares False
        problems.add(
            found.index[gone], field,
            [f"the flight left at {iso(d)}, before the moment {iso(a)}: a flight is scored"
             " before it leaves" for d, a in zip(left["departed"][gone], at[gone], strict=True)],
        )  # fmt: skip
    return late | unknown | gone


def iso(moment: pd.Timestamp) -> str:
    return moment.tz_convert("UTC").isoformat().replace("+00:00", "Z")


def request_records(joined: pd.DataFrame, with_moment: bool) -> pd.DataFrame:
    """The REQUEST fields of each joined row, as training makes them: the local schedule
    from the scheduled departure (New York time), the lead from the moment; then sched_dep,
    and the moment when the input did not bring its own."""
    local = joined[SCHEDULED].dt.tz_convert(NEW_YORK)
    schedule = {part: getattr(local.dt, part) for part in LOCAL}
    lead = (joined[SCHEDULED] - joined[MOMENT]) / pd.Timedelta(hours=1)
    records = joined.assign(**schedule, lead_hours=lead)
    extra = [SCHEDULED, MOMENT] if with_moment else [SCHEDULED]
    records = records[[*REQUEST_FIELDS, *extra]]
    return records.astype({**dict.fromkeys(INTS, "int64"), **dict.fromkeys(FLOATS, "float64")})
