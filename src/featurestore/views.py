"""The feature views, each declared once: entity keys, event time, time-to-live, fields and
the function that builds its table from the raw snapshot (in the spirit of a Feast feature
view). A view's table holds one row per entity and event: the value its fields take from
that moment on, so a lookup as of a moment is the latest row at or before it.

One clock: every moment is a UTC instant. In the raw flights `time_hour` is the scheduled
hour in UTC, so the scheduled departure is `time_hour + minute`, and a flight left at
`scheduled + dep_delay` (a cancelled flight has no dep_delay and never leaves). Weather's
`time_hour` is UTC too (EDA-02).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from src.common.schema import DELAY_MINUTES, WEATHER, Column

Raw = dict[str, pd.DataFrame]
LOCAL_DAY = ["year", "month", "day"]  # the raw flights' own date columns are local
# Airlines publish their timetable months ahead; a week is a safe floor, and it lets a
# prediction 24 hours out use the whole timetable of its day.
PUBLISHED_AHEAD = timedelta(days=7)
WINDOW = timedelta(hours=2)  # the airport state covers the departures of the last two hours
OBSERVATION_DELAY = timedelta(hours=1)  # a weather row of hour H is known at H+1


@dataclass(frozen=True)
class FeatureView:
    name: str
    entities: tuple[str, ...]  # the columns a lookup matches exactly
    event_time: str  # the column holding the UTC moment from which a row holds
    ttl: timedelta | None  # a row older than this, at the lookup's moment, is missing
    fields: tuple[Column, ...]
    build: Callable[[Raw], pd.DataFrame]

    @property
    def field_names(self) -> list[str]:
        return [c.name for c in self.fields]

    @property
    def columns(self) -> list[str]:
        return [*self.entities, self.event_time, *self.field_names]


def scheduled_departure(flights: pd.DataFrame) -> pd.Series:
    return flights["time_hour"] + pd.to_timedelta(flights["minute"], unit="min")


def departures(flights: pd.DataFrame) -> pd.DataFrame:
    """The flights that left (EDA-01: cancelled ones never did), with their UTC departure."""
    left = flights[flights["dep_delay"].notna()]
    moment = scheduled_departure(left) + pd.to_timedelta(left["dep_delay"], unit="min")
    return left.assign(departed=moment)


def build_timetable(raw: Raw) -> pd.DataFrame:
    """What the published timetable says of each scheduled flight, cancelled ones included
    (a cancellation is not known a week ahead)."""
    f = raw["flights"]
    sched = scheduled_departure(f)
    hour_at_origin = f.groupby(["origin", "time_hour"])["flight"].transform("size")
    day_at_origin = f.groupby(["origin", *LOCAL_DAY])["flight"].transform("size")
    carrier_day = f.groupby(["origin", "carrier", *LOCAL_DAY])["flight"].transform("size")
    table = pd.DataFrame(
        {
            "carrier": f["carrier"],
            "flight": f["flight"],
            "origin": f["origin"],
            "sched_dep": sched,
            "published": sched - PUBLISHED_AHEAD,
            "dest": f["dest"],
            "distance": f["distance"],
            "tailnum": f["tailnum"],
            "origin_hour_scheduled": hour_at_origin,
            "origin_day_scheduled": day_at_origin,
            "carrier_day_scheduled": carrier_day,
        }
    )
    return table.join(plane_legs(f.assign(sched_dep=sched)))


def plane_legs(flights: pd.DataFrame) -> pd.DataFrame:
    """Each flight's leg number in its plane's local day of NYC departures (1 for the first)
    and the minutes since the plane's previous scheduled departure that day (missing for the
    first leg). Flights without a tail number get neither."""
    order = ["tailnum", *LOCAL_DAY, "sched_dep", "carrier", "flight"]  # ties: a fixed order
    f = flights[flights["tailnum"].notna()].sort_values(order)
    day = f.groupby(["tailnum", *LOCAL_DAY], sort=False)
    legs = pd.DataFrame(
        {
            "plane_leg": day.cumcount() + 1,
            "plane_turnaround_min": day["sched_dep"].diff().dt.total_seconds() / 60,
        }
    )
    return legs.reindex(flights.index)


def build_weather(raw: Raw) -> pd.DataFrame:
    """Each hourly observation, known from the end of its hour: the row of hour H is a report
    made within H (the routine one at H:51, its precipitation summed up to then), so only
    at H+1 is it safe to say it had been made."""
    readings = raw["weather"][["origin", *(c.name for c in WEATHER)]]
    return readings.assign(observed=raw["weather"]["time_hour"] + OBSERVATION_DELAY)


def build_plane_last_leg(raw: Raw) -> pd.DataFrame:
    """Each departed leg's delay, known from the moment the plane left."""
    left = departures(raw["flights"])
    return pd.DataFrame(
        {
            "tailnum": left["tailnum"],
            "departed": left["departed"],
            "plane_last_dep_delay": left["dep_delay"],
        }
    )


def build_airport_state(raw: Raw) -> pd.DataFrame:
    """The departures of the last two hours at each origin, as a row at every moment the
    window changes: a departure enters when it leaves the gate and exits two hours later.
    The exit rows make a lookup exact without a time-to-live: the latest row at or before
    any moment holds the window (moment - 2 h, moment], empty windows included."""
    left = departures(raw["flights"])
    delay = left["dep_delay"]
    enter = pd.DataFrame(
        {
            "origin": left["origin"],
            "at": left["departed"],
            "n": 1,
            "delay": delay,
            "late": (delay >= DELAY_MINUTES).astype("int64"),
        }
    )
    leave = enter.assign(at=enter["at"] + WINDOW, n=-1, delay=-enter["delay"], late=-enter["late"])
    # Whole-minute delays add up exactly in float64, so the running sums never drift.
    change = pd.concat([enter, leave]).groupby(["origin", "at"])[["n", "delay", "late"]].sum()
    state = change.groupby(level="origin").cumsum().reset_index()
    count = state["n"]
    return pd.DataFrame(
        {
            "origin": state["origin"],
            "at": state["at"],
            "airport_departed_2h": count,
            "airport_mean_delay_2h": (state["delay"] / count).where(count > 0),
            "airport_share_delayed_2h": (state["late"] / count).where(count > 0),
        }
    )


def field(name: str, kind: str, description: str, nullable: bool = False) -> Column:
    return Column(name, kind, nullable, description=description)


TIMETABLE = FeatureView(
    "timetable",
    entities=("carrier", "flight", "origin", "sched_dep"),
    event_time="published",
    ttl=None,
    fields=(
        field("dest", "str", "Destination airport (FAA)"),
        field("distance", "int", "Great-circle miles"),
        field("tailnum", "str", "The plane scheduled", nullable=True),
        field("origin_hour_scheduled", "int", "Departures scheduled at the origin that hour"),
        field("origin_day_scheduled", "int", "Departures scheduled at the origin that local day"),
        field("carrier_day_scheduled", "int", "The carrier's departures there that day"),
        field("plane_leg", "int", "The plane's NYC departure of its local day: 1, 2, ...", True),
        field("plane_turnaround_min", "float", "Minutes since its previous leg that day", True),
    ),
    build=build_timetable,
)
WEATHER_VIEW = FeatureView(
    "weather",
    entities=("origin",),
    event_time="observed",
    ttl=timedelta(hours=3),
    fields=WEATHER,
    build=build_weather,
)
PLANE_LAST_LEG = FeatureView(
    "plane_last_leg",
    entities=("tailnum",),
    event_time="departed",
    ttl=timedelta(hours=12),
    fields=(field("plane_last_dep_delay", "float", "Delay of the plane's latest departure", True),),
    build=build_plane_last_leg,
)
AIRPORT_STATE = FeatureView(
    "airport_state",
    entities=("origin",),
    event_time="at",
    ttl=None,
    fields=(
        field("airport_departed_2h", "int", "Departures from the origin in the last 2 hours"),
        field("airport_mean_delay_2h", "float", "Their mean departure delay, minutes", True),
        field("airport_share_delayed_2h", "float", f"Their share {DELAY_MINUTES}+ min late", True),
    ),
    build=build_airport_state,
)
# In lookup order: the timetable names the plane the plane view is looked up by.
VIEWS = {v.name: v for v in (TIMETABLE, WEATHER_VIEW, PLANE_LAST_LEG, AIRPORT_STATE)}
