"""One flight known by its carrier, number and New York date, as the API scores it: found in
the online store's timetable, read at the store's clock, as a request record (the REQUEST
fields and the flight number, what POST /predict takes) and what an answer says of it.

One moment for everything: the clock, read once. A flight that has left by then, or was
due and has not left (late or cancelled), has nothing left to predict."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from src.common.errors import PipelineError
from src.common.schema import API_REQUEST_FIELDS
from src.featurestore.online import OnlineStore, instant, lookup_at
from src.featurestore.views import DEPARTURE, FEATURE_VIEWS, NEW_YORK

HOUR_NS = 3_600_000_000_000


class FlightError(PipelineError):
    """A flight the store cannot score; `details` says what a caller may choose from."""

    def __init__(self, message: str, **details: Any):
        super().__init__(message)
        self.details = details


class FlightNotFound(FlightError):
    """No such carrier, number and date in the timetable as of the clock."""


class FlightConflict(FlightError):
    """Not one departure to score: two match (`?origin=` chooses), or it has left."""


@dataclass(frozen=True)
class FlightFeatures:
    record: dict[str, Any]  # API_REQUEST fields, missing ones None
    sched_dep: pd.Timestamp  # UTC
    as_of: pd.Timestamp  # the store's clock the features were read at
    lead_hours: float
    ages_s: dict[str, float | None]  # per feature view: seconds since its value's event


def flight_features(
    store: OnlineStore, carrier: str, number: int, day: date, origin: str | None = None
) -> FlightFeatures:
    """The departure of `carrier` `number` on the New York date `day` (from `origin`, when
    two NYC airports have one), as the store knows it at its clock. StoreUnavailable if the
    store was never fed; FlightNotFound, FlightConflict as their names say."""
    at = store.moment_ns(None)  # the clock, once
    found = store.departures_on(carrier, number, day, at)
    if origin is not None:
        found = [(o, sched) for o, sched in found if o == origin]
    name = f"{carrier} {number} on {day.isoformat()}" + (f" from {origin}" if origin else "")
    if not found:
        raise FlightNotFound(f"no flight {name} in the timetable as of {iso(instant(at))}")
    if len(found) > 1:
        each = " and ".join(f"from {o} at {local(sched):%H:%M}" for o, sched in found)
        choices = " or ".join(f"?origin={o}" for o, _ in found)
        raise FlightConflict(
            f"{name} leaves {each} (New York time): choose one with {choices}",
            origins=[o for o, _ in found],
        )
    origin, sched = found[0]
    keys = flight_keys(carrier, number, origin, sched)
    left = departure_delay(store, keys, at)
    if left is not None:
        departed = iso(instant(sched) + timedelta(minutes=left))
        raise FlightConflict(
            f"{carrier} {number} from {origin} left at {departed} ({left:+g} min) before the "
            f"store's clock {iso(instant(at))}: nothing to predict",
            departed=departed,
            dep_delay=left,
        )
    if sched < at:
        raise FlightConflict(
            f"{carrier} {number} from {origin} was due at {iso(instant(sched))} and has not left by "
            f"the store's clock {iso(instant(at))} (late or cancelled): nothing to predict"
        )
    return features_at(store, keys, at)


def flight_keys(carrier: str, number: int, origin: str, sched: int) -> dict[str, Any]:
    """A departure's entities, as the timetable (and the departure view) key it: the
    scheduled departure in UTC nanoseconds, as the store holds it (a Timestamp would be
    converted back on every read)."""
    return {"carrier": carrier, "flight": number, "origin": origin, "sched_dep": sched}


def departure_delay(store: OnlineStore, keys: dict[str, Any], at: int) -> float | None:
    """The departure's delay in minutes if it had left by `at` (the departure view), else
    None: not left yet, late, or cancelled (the store cannot tell those apart)."""
    delay: float | None = store.read_at(DEPARTURE, list(keys.values()), at)["dep_delay"]
    return delay


def features_at(store: OnlineStore, keys: dict[str, Any], at: int) -> FlightFeatures:
    """The departure `keys` (flight_keys) as a request record, with every feature view read
    at `at` (the store's clock) and the lead from `at` to its scheduled departure. The
    caller has checked that the flight is still to leave."""
    sched = keys["sched_dep"]
    lead = (sched - at) / HOUR_NS
    sched_local = local(sched)
    known = lookup_at(store, keys, at) | {
        "year": sched_local.year,
        "month": sched_local.month,
        "day": sched_local.day,
        "hour": sched_local.hour,
        "minute": sched_local.minute,
        "lead_hours": lead,
    }
    return FlightFeatures(
        record={f: known.get(f) for f in API_REQUEST_FIELDS},
        sched_dep=instant(sched),
        as_of=instant(at),
        lead_hours=lead,
        ages_s={view: known[f"{view}_age_s"] for view in FEATURE_VIEWS},
    )


def local(ns: int) -> datetime:
    """A UTC moment (nanoseconds) on New York's wall clock, to the second: a record's
    date and time of day. A plain datetime: a Timestamp's tz_convert costs more, on every
    request."""
    return datetime.fromtimestamp(ns // 1_000_000_000, NEW_YORK)


def iso(moment: pd.Timestamp) -> str:
    """A UTC moment as the API's answers write it: 2013-08-15T10:26:00Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
