"""An airport's departures board, as the API scores it: every departure the timetable
(as published by the store's clock) has leaving an origin in a window of scheduled
departures, each with its status at the clock. A departure still to leave carries the
request record GET /flights builds for it (`flights.features_at`), so a caller scores the
whole board in one batch.

One moment for everything, as in flights.py: the clock, read once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

import pandas as pd

from src.featurestore.flights import (
    HOUR_NS,
    FlightFeatures,
    departure_delay,
    features_at,
    flight_keys,
)
from src.featurestore.online import OnlineStore, instant, nanoseconds
from src.featurestore.views import NEW_YORK, TIMETABLE

# A departure's status at the clock. "overdue" as in the airport state's
# airport_overdue_2h: due before the clock and not left (late or cancelled: the store cannot
# tell which, as a cancellation is never an event).
SCHEDULED, DEPARTED, OVERDUE = "scheduled", "departed", "overdue"


@dataclass(frozen=True)
class BoardRow:
    carrier: str
    flight: int
    origin: str
    dest: str | None
    sched_dep: pd.Timestamp  # UTC
    status: str  # SCHEDULED, DEPARTED or OVERDUE
    dep_delay: float | None  # DEPARTED: minutes against the schedule (< 0: early)
    features: FlightFeatures | None  # SCHEDULED: what it is scored on

    @property
    def sched_dep_local(self) -> pd.Timestamp:
        return self.sched_dep.tz_convert(NEW_YORK)

    @property
    def departed(self) -> pd.Timestamp | None:
        if self.dep_delay is None:
            return None
        return self.sched_dep + timedelta(minutes=self.dep_delay)


@dataclass(frozen=True)
class Board:
    origin: str
    start: pd.Timestamp  # the window of scheduled departures, [start, end), UTC
    end: pd.Timestamp
    as_of: pd.Timestamp  # the store's clock, read once
    rows: list[BoardRow]  # by scheduled departure, then carrier and number

    @property
    def records(self) -> list[dict[str, Any]]:
        """The request records of the departures still to leave, in the board's order."""
        return [row.features.record for row in self.rows if row.features is not None]


def window_start(start: datetime | time | None, at: int) -> int:
    """The window's first moment (UTC nanoseconds): the clock `at` when None; a time of day
    is New York's, on the clock's New York date; a datetime without a zone is New York's
    (an hour that occurs twice in autumn is its first, zoneinfo's fold 0)."""
    if start is None:
        return at
    if isinstance(start, time):
        day = instant(at).tz_convert(NEW_YORK).date()
        return nanoseconds(datetime.combine(day, start.replace(tzinfo=None), NEW_YORK))
    if start.tzinfo is None:
        start = start.replace(tzinfo=NEW_YORK)
    return nanoseconds(start)


def board(store: OnlineStore, origin: str, start: datetime | time | None, hours: float) -> Board:
    """The departures from `origin` scheduled in [start, start + hours), as the store knows
    them at its clock. StoreUnavailable if the store was never fed."""
    at = store.moment_ns(None)  # the clock, once
    low = window_start(start, at)
    high = low + round(hours * HOUR_NS)
    rows = [
        board_row(store, origin, carrier, flight, sched, at)
        for carrier, flight, sched in store.departures_from(origin, low, high, at)
    ]
    return Board(origin, instant(low), instant(high), instant(at), rows)


def board_row(
    store: OnlineStore, origin: str, carrier: str, flight: int, sched: int, at: int
) -> BoardRow:
    """One departure at the clock `at`: scheduled (with its features, as GET /flights
    reads them), departed (with its delay) or overdue, by the same rules as GET /flights."""
    keys = flight_keys(carrier, flight, origin, sched)
    left = departure_delay(store, keys, at)
    if left is None and sched >= at:
        found = features_at(store, keys, at)
        dest = found.record["dest"]
        return BoardRow(carrier, flight, origin, dest, found.sched_dep, SCHEDULED, None, found)
    dest = store.read_at(TIMETABLE, list(keys.values()), at)["dest"]
    status = OVERDUE if left is None else DEPARTED
    return BoardRow(carrier, flight, origin, dest, instant(sched), status, left, None)
