"""The online store in one SQLite file, the embedded default: a table per view keyed by its
entities, typed columns, and a one-row table for the clock. WAL lets the API read while the
feed writes. One connection per store, shared by the threads of a process (the API's thread
pool): calls take turns on a lock."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from src.common.errors import PipelineError
from src.featurestore.online import OnlineStore, Row, key_kinds
from src.featurestore.views import TIMETABLE, VIEWS, FeatureView

SQL_TYPES = {"int": "INTEGER", "float": "REAL", "str": "TEXT", "datetime": "INTEGER"}


def quoted(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def create_table(view: FeatureView) -> str:
    kinds = key_kinds(view)
    keys = [f'"{k}" {SQL_TYPES[t]} NOT NULL' for k, t in zip(view.entities, kinds, strict=True)]
    fields = [f'"{c.name}" {SQL_TYPES[c.kind]}' for c in view.fields]
    columns = ", ".join([*keys, f'"{view.event_time}" INTEGER NOT NULL', *fields])
    return f"""CREATE TABLE IF NOT EXISTS "{view.name}" ({columns},
        PRIMARY KEY ({quoted(list(view.entities))})) STRICT, WITHOUT ROWID"""


def upsert(view: FeatureView) -> str:
    """Insert, or replace the entity's row unless the one held is newer."""
    updated = [view.event_time, *view.field_names]
    return f"""INSERT INTO "{view.name}" ({quoted(view.columns)})
        VALUES ({", ".join("?" * len(view.columns))})
        ON CONFLICT ({quoted(list(view.entities))}) DO UPDATE
        SET {", ".join(f'"{c}" = excluded."{c}"' for c in updated)}
        WHERE excluded."{view.event_time}" >= "{view.name}"."{view.event_time}" """


def select(view: FeatureView) -> str:
    where = " AND ".join(f'"{k}" = ?' for k in view.entities)
    return f"""SELECT {quoted([view.event_time, *view.field_names])} FROM "{view.name}"
        WHERE {where}"""


# The timetable's rows of one flight number in a span of scheduled departures: a range in
# the table's primary key (carrier, flight, origin, sched_dep).
SCHEDULED = f"""SELECT origin, sched_dep, "{TIMETABLE.event_time}" FROM "{TIMETABLE.name}"
    WHERE carrier = ? AND flight = ? AND sched_dep >= ? AND sched_dep < ?"""
# An airport's departures in a span (the API's board): an index by origin and scheduled
# departure, covering the publication time, so the query never reads the table's rows.
BY_ORIGIN = f"""CREATE INDEX IF NOT EXISTS timetable_by_origin
    ON "{TIMETABLE.name}" (origin, sched_dep, "{TIMETABLE.event_time}")"""
SCHEDULED_FROM = f"""SELECT carrier, flight, sched_dep, "{TIMETABLE.event_time}"
    FROM "{TIMETABLE.name}" WHERE origin = ? AND sched_dep >= ? AND sched_dep < ?"""
CLOCK = "CREATE TABLE IF NOT EXISTS clock (id INTEGER PRIMARY KEY CHECK (id = 0), at INTEGER)"
ADVANCE = """INSERT INTO clock (id, at) VALUES (0, ?1)
    ON CONFLICT (id) DO UPDATE SET at = ?1 WHERE ?1 > at"""


class SQLiteStore(OnlineStore):
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.db = sqlite3.connect(self.path, check_same_thread=False)
        try:
            # WAL: readers never wait for the feed; NORMAL: a commit is durable at the next
            # checkpoint, enough for a store the feed can rebuild.
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            with self.db:
                self.db.execute(CLOCK)
                self.check_views()
                for view in VIEWS.values():
                    self.db.execute(create_table(view))
                    self.check_columns(view)
                self.db.execute(BY_ORIGIN)  # also on a file fed before the index existed
        except BaseException:
            self.db.close()
            raise
        self.sql = {name: (upsert(view), select(view)) for name, view in VIEWS.items()}

    def check_views(self) -> None:
        """A file fed before a view was declared is refused: the feed resumes after its
        clock, so the new view would never get the events before it."""
        if self.clock_ns() is None:
            return
        tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master")}
        new = [name for name in VIEWS if name not in tables]
        if new:
            raise PipelineError(
                f"{self.path}: fed before the view(s) {new} were declared; delete the file "
                "and run `python -m src.feed` again"
            )

    def check_columns(self, view: FeatureView) -> None:
        """A file written for other declarations is refused, not half-read."""
        held = [row[1] for row in self.db.execute(f'PRAGMA table_info("{view.name}")')]
        if held != view.columns:
            raise PipelineError(
                f"{self.path}: table '{view.name}' has columns {held}, the view declares "
                f"{view.columns}; delete the file and run `python -m src.feed` again"
            )

    def write(self, view: FeatureView, rows: list[Row]) -> None:
        with self.lock, self.db:
            self.db.executemany(self.sql[view.name][0], rows)

    def fetch(self, view: FeatureView, key: Row) -> tuple[int, list[Any]] | None:
        with self.lock:
            row = self.db.execute(self.sql[view.name][1], key).fetchone()
        return None if row is None else (row[0], list(row[1:]))

    def scheduled(self, carrier: str, flight: int, low: int, high: int) -> list[Row]:
        with self.lock:
            return self.db.execute(SCHEDULED, (carrier, flight, low, high)).fetchall()

    def scheduled_from(self, origin: str, low: int, high: int) -> list[Row]:
        with self.lock:
            return self.db.execute(SCHEDULED_FROM, (origin, low, high)).fetchall()

    def clock_ns(self) -> int | None:
        with self.lock:
            row = self.db.execute("SELECT at FROM clock WHERE id = 0").fetchone()
        return None if row is None else row[0]

    def advance_ns(self, moment: int) -> None:
        with self.lock, self.db:
            self.db.execute(ADVANCE, (moment,))

    def close(self) -> None:
        with self.lock:
            self.db.close()
