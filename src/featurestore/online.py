"""The online store: each feature view's current value per entity, and the store's clock
(the latest event time it has seen), behind one interface over two backends: SQLite, the
embedded default (online_sqlite.py), and Redis (online_redis.py). The views are those of
views.py. Read at the store's clock, a flight's features are what `offline.as_of` gives at
that moment: the same latest row, the same age, the same time-to-live.

The feed (`feed`, run by `python -m src.feed`) applies the views' rows in event-time order.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from src.common.errors import PipelineError
from src.common.schema import FLIGHTS
from src.featurestore.views import FEATURE_VIEWS, NEW_YORK, TIMETABLE, VIEWS, FeatureView

log = logging.getLogger(__name__)

# What a store keeps of a view's row: entity keys, event time, fields, as Python values
# (int, float, str, None for missing); every moment is an int of UTC nanoseconds, exact.
Row = tuple[Any, ...]
# The entity columns' kinds: the raw flights declare them, except the scheduled departure.
ENTITY_KINDS = {c.name: c.kind for c in FLIGHTS.columns} | {"sched_dep": "datetime"}


class StoreUnavailable(PipelineError):
    """The store cannot answer: never fed (no clock), its file missing, its server down."""


def key_kinds(view: FeatureView) -> list[str]:
    return [ENTITY_KINDS[k] for k in view.entities]


def field_kinds(view: FeatureView) -> list[str]:
    return [c.kind for c in view.fields]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def nanoseconds(moment: Any) -> int:
    """A UTC instant (a Timestamp or datetime with a time zone, or text such as
    2013-06-01T12:00Z) as UTC nanoseconds."""
    if type(moment) is datetime and moment.tzinfo is not None:
        # Exact without building a Timestamp (GET /flights converts on every request); a
        # Timestamp, a datetime subclass, keeps its nanoseconds through pandas below.
        return (moment - EPOCH) // timedelta(microseconds=1) * 1000
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        raise PipelineError(f"moment {moment!r}: not a UTC instant (no time zone)")
    return int(stamp.as_unit("ns").value)


def instant(ns: int) -> pd.Timestamp:
    return pd.Timestamp(ns, unit="ns", tz="UTC")


def python_values(column: pd.Series, kind: str) -> list[Any]:
    """A column as Python values of its kind, None where missing."""
    if kind == "datetime":
        return pd.DatetimeIndex(column).as_unit("ns").asi8.tolist()
    typed = column.astype({"int": "Int64", "float": "float64"}.get(kind, object))
    return typed.astype(object).where(typed.notna(), None).tolist()


def encode_rows(view: FeatureView, rows: pd.DataFrame) -> list[Row]:
    """The rows a store writes: entities, event time, fields. A row with a missing entity
    or event time is left out: no lookup could find it (as in the offline join)."""
    keys = [*view.entities, view.event_time]
    rows = rows[rows[keys].notna().all(axis=1)]
    kinds = [*key_kinds(view), "datetime", *field_kinds(view)]
    columns = [python_values(rows[c], k) for c, k in zip(view.columns, kinds, strict=True)]
    return list(zip(*columns, strict=True))


def encode_key(view: FeatureView, entity_keys: Sequence[Any]) -> Row | None:
    """One entity's key as the store holds it; None if a part is missing (nothing to find)."""
    if len(entity_keys) != len(view.entities):
        raise PipelineError(f"view '{view.name}': key {entity_keys!r} is not {view.entities}")
    if any(missing(k) for k in entity_keys):
        return None
    parts = zip(entity_keys, key_kinds(view), strict=True)
    return tuple([key_part(view, python_value(k), kind) for k, kind in parts])


def missing(value: Any) -> bool:
    """pd.isna of one key part; a str or int, the usual parts, is never missing and is
    answered without asking pandas."""
    return not isinstance(value, str | int) and bool(pd.isna(value))


def python_value(value: Any) -> Any:
    """A key taken from a DataFrame holds NumPy scalars, which sqlite3 cannot bind."""
    return value.item() if isinstance(value, np.generic) else value


def key_part(view: FeatureView, value: Any, kind: str) -> Any:
    """A key part in the one form both stores hold: a whole number as an int (a flight
    number read from a column with gaps comes as 1545.0, which Redis would spell apart)."""
    if kind == "datetime":
        # An int is a moment in the store's own form (UTC nanoseconds, as `scheduled` gives
        # it back); bool is an int too, and no moment.
        return value if type(value) is int else nanoseconds(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise PipelineError(f"view '{view.name}': key part {value!r} is not a whole number")
        return int(value)
    return value


class OnlineStore(ABC):
    """One interface, two backends. A backend writes rows (keeping, per entity, the row of
    the latest event time), fetches one entity's row, and keeps the clock; the rules of a
    read (age, time-to-live, the moment) are here, once."""

    # ---- what a backend provides
    @abstractmethod
    def write(self, view: FeatureView, rows: list[Row]) -> None:
        """Upsert: a row replaces its entity's only if its event time is not older."""

    @abstractmethod
    def fetch(self, view: FeatureView, key: Row) -> tuple[int, list[Any]] | None:
        """The entity's (event time, field values), or None if the store has no row."""

    @abstractmethod
    def scheduled(self, carrier: str, flight: int, low: int, high: int) -> list[Row]:
        """The timetable's (origin, sched_dep, published) of every row of the carrier's flight
        number with sched_dep in [low, high), whenever published."""

    @abstractmethod
    def scheduled_from(self, origin: str, low: int, high: int) -> list[Row]:
        """The timetable's (carrier, flight, sched_dep, published) of every row leaving
        `origin` with sched_dep in [low, high), whenever published."""

    @abstractmethod
    def clock_ns(self) -> int | None:
        """The clock, persisted in the store; None before the first event."""

    @abstractmethod
    def advance_ns(self, moment: int) -> None:
        """Move the clock to `moment` if that is later (it never goes back)."""

    @abstractmethod
    def close(self) -> None: ...

    # ---- the interface
    def apply(self, view_name: str, rows: pd.DataFrame) -> int:
        """Write rows of a view (its entities, event time and fields); returns how many."""
        encoded = encode_rows(view_of(view_name), rows)
        self.write(view_of(view_name), encoded)
        return len(encoded)

    def advance(self, moment: Any) -> None:
        self.advance_ns(nanoseconds(moment))

    @property
    def clock(self) -> pd.Timestamp | None:
        ns = self.clock_ns()
        return None if ns is None else instant(ns)

    def read(self, view_name: str, entity_keys: Sequence[Any], moment: Any = None) -> dict:
        """The entity's current fields and `<view>_age_s` (seconds from its event time to
        the moment, default the store's clock). A value older than the view's time-to-live
        is missing, never current (its age is kept); with no row, every value is None."""
        return self.read_at(view_of(view_name), entity_keys, self.moment_ns(moment))

    def read_at(self, view: FeatureView, entity_keys: Sequence[Any], moment: int) -> dict:
        key = encode_key(view, entity_keys)
        found = None if key is None else self.fetch(view, key)
        if found is None:
            return dict.fromkeys([*view.field_names, f"{view.name}_age_s"])
        event, values = found
        if event > moment:  # a feed running alongside wrote past the moment: not yet known
            return dict.fromkeys([*view.field_names, f"{view.name}_age_s"])
        age = (moment - event) / 1e9
        if view.ttl is not None and age > view.ttl.total_seconds():
            values = [None] * len(values)
        return {**dict(zip(view.field_names, values, strict=True)), f"{view.name}_age_s": age}

    def departures_on(self, carrier: str, flight: Any, day: date, moment: int) -> list[Row]:
        """(origin, sched_dep) of each departure the timetable published by `moment` holds
        for the carrier's flight number on `day`, a New York date (the one a passenger
        knows), in time order."""
        number = key_part(TIMETABLE, python_value(flight), "int")
        low, high = (
            nanoseconds(datetime.combine(d, datetime.min.time(), NEW_YORK))
            for d in (day, day + timedelta(days=1))
        )
        rows = self.scheduled(carrier, number, low, high)
        known = [(origin, sched) for origin, sched, published in rows if published <= moment]
        return sorted(known, key=lambda row: (row[1], row[0]))

    def departures_from(self, origin: str, low: int, high: int, moment: int) -> list[Row]:
        """(carrier, flight, sched_dep) of each departure from `origin` with sched_dep in
        [low, high) that the timetable published by `moment` holds, in time order (then by
        carrier and number): an airport's departures board."""
        rows = self.scheduled_from(origin, low, high)
        known = [(c, f, sched) for c, f, sched, published in rows if published <= moment]
        return sorted(known, key=lambda row: (row[2], row[0], row[1]))

    def moment_ns(self, moment: Any) -> int:
        """A read's moment: the clock by default; never before it (the store holds only the
        latest value, so an earlier moment could see the future)."""
        clock = self.clock_ns()
        if clock is None:
            raise StoreUnavailable("the online store is empty: run `python -m src.feed` first")
        if moment is None:
            return clock
        ns = nanoseconds(moment)
        if ns < clock:
            raise PipelineError(
                f"moment {moment}: before the online store's clock {instant(clock)}"
            )
        return ns

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(kind: str, path: Path | None = None, url: str | None = None) -> OnlineStore:
    """The SQLite store at `path`, or the Redis store at `url`. Each backend is imported
    only when chosen: the SQLite default needs no Redis client."""
    if kind == "sqlite" and path is not None:
        from src.featurestore.online_sqlite import SQLiteStore

        return SQLiteStore(path)
    if kind == "redis" and url is not None:
        from src.featurestore.online_redis import RedisStore

        return RedisStore(url)
    raise PipelineError(f"online store '{kind}': sqlite needs a path, redis a URL")


def view_of(name: str) -> FeatureView:
    if name not in VIEWS:
        raise PipelineError(f"no feature view '{name}' (views: {', '.join(VIEWS)})")
    return VIEWS[name]


def lookup(store: OnlineStore, keys: dict[str, Any], moment: Any = None) -> dict:
    """Every view's fields and age for one example, the online twin of `offline.as_of`:
    `keys` holds the flight's entities (carrier, flight, origin, sched_dep); the feature
    views are read in order, so the timetable names the plane the plane view is read by
    (the departure view, not a feature, is not read). One moment
    for all views (the clock by default), however the feed moves meanwhile."""
    return lookup_at(store, keys, store.moment_ns(moment))


def lookup_at(store: OnlineStore, keys: dict[str, Any], at: int) -> dict:
    """`lookup` at `at` (UTC nanoseconds), unchecked: a caller that read the clock reads
    at it, though a feed may have moved it since (a row newer than `at` reads missing)."""
    known = dict(keys)
    for view in FEATURE_VIEWS.values():
        known |= store.read_at(view, [known.get(k) for k in view.entities], at)
    return known


def feed(
    store: OnlineStore,
    tables: dict[str, pd.DataFrame],
    start: Any = None,
    until: Any = None,
    chunk: int = 50_000,
    progress: Callable[[int, pd.Timestamp], None] | None = None,
) -> int:
    """Apply the views' rows with event time in [start, until] in event-time order, `chunk`
    events at a time, moving the clock to each chunk's last event time (events of one moment
    stay in one chunk, so every event at or before the clock has been applied). Without
    `start`, the feed resumes after the store's clock. With `until`, the clock ends there:
    the store has seen everything up to that moment. Returns the events applied."""
    if chunk < 1:
        raise PipelineError(f"chunk: {chunk} events per write; 1 or more")
    clock = store.clock_ns()
    resume = clock + 1 if clock is not None else np.iinfo(np.int64).min
    low = nanoseconds(start) if start is not None else resume
    if (
        clock is not None and low > resume
    ):  # the events in between would never be applied, yet the clock passes them
        raise PipelineError(
            f"--from {instant(low)} is after the store's clock {instant(resume - 1)}: "
            "events in between would be skipped; start at or before the clock"
        )
    high = nanoseconds(until) if until is not None else np.iinfo(np.int64).max
    times, rows = {}, {}
    for name, table in tables.items():
        at = pd.DatetimeIndex(table[VIEWS[name].event_time]).as_unit("ns").asi8
        keep = np.flatnonzero((at >= low) & (at <= high))
        keep = keep[np.argsort(at[keep], kind="stable")]  # ties keep the table's order
        times[name], rows[name] = at[keep], table.iloc[keep]
    every = np.sort(np.concatenate(list(times.values())))
    applied = 0
    for end in chunk_ends(every, chunk):
        for name in tables:
            first = np.searchsorted(times[name], end, side="right")
            applied += store.apply(name, rows[name].iloc[:first])
            times[name], rows[name] = times[name][first:], rows[name].iloc[first:]
        store.advance_ns(int(end))
        if progress:
            progress(applied, instant(int(end)))
    if until is not None:
        store.advance_ns(high)
    return applied


def chunk_ends(times: np.ndarray, chunk: int) -> list[int]:
    """The last event time of each chunk of about `chunk` sorted events; a moment's events
    are never split between two chunks."""
    if not len(times):
        return []
    return sorted(set(times[chunk - 1 :: chunk].tolist()) | {int(times[-1])})


def timed_progress(every_s: float = 5.0) -> Callable[[int, pd.Timestamp], None]:
    """A progress callback logging events applied, the moment reached and events/s, at
    most once per `every_s` seconds."""
    start = last = time.perf_counter()

    def report(applied: int, moment: pd.Timestamp) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= every_s:
            last = now
            rate = applied / (now - start)
            log.info("applied %d events, up to %s (%.0f events/s)", applied, moment, rate)

    return report
