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
from zoneinfo import ZoneInfo

import pandas as pd

from src.common.schema import (
    AIRPORT_STATE_FIELDS,
    DELAY_MINUTES,
    DEST,
    DISTANCE,
    PLANE_LAST_LEG_FIELDS,
    TAILNUM,
    TIMETABLE_FIELDS,
    WEATHER,
    Column,
)

Raw = dict[str, pd.DataFrame]
LOCAL_DAY = ["year", "month", "day"]  # the raw flights' own date columns are local
NEW_YORK = ZoneInfo("America/New_York")  # their time zone: a ticket's date and times
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
    # False: the store keeps the view for the API's own checks, never as a model input, so
    # neither the offline join (training) nor `lookup` reads it (FEATURE_VIEWS).
    feature: bool = True

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
    """The origin's last two hours, as a row at every moment they change: the departures
    of the window (a departure enters when it leaves the gate and exits two hours later),
    and the flights due in the window that have not left (one enters at its scheduled
    departure and exits when it leaves, or two hours later; a cancelled one never leaves).
    The exit rows make a lookup exact without a time-to-live: the latest row at or before
    any moment holds the window (moment - 2 h, moment], empty windows included."""
    changes = pd.concat([departed_changes(raw["flights"]), overdue_changes(raw["flights"])])
    change = changes.fillna(0).groupby(["origin", "at"])[["n", "delay", "late", "overdue"]].sum()
    state = change.groupby(level="origin").cumsum().reset_index()
    count = state["n"]
    return pd.DataFrame(
        {
            "origin": state["origin"],
            "at": state["at"],
            "airport_departed_2h": count,
            "airport_mean_delay_2h": (state["delay"] / count).where(count > 0),
            "airport_share_delayed_2h": (state["late"] / count).where(count > 0),
            "airport_overdue_2h": state["overdue"],
        }
    )


def departed_changes(flights: pd.DataFrame) -> pd.DataFrame:
    """+1 (and its delay) when a departure leaves, -1 two hours later. Whole-minute delays
    add up exactly in float64, so the running sums never drift."""
    left = departures(flights)
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
    return pd.concat(
        [enter, enter.assign(at=enter["at"] + WINDOW, n=-1, delay=-delay, late=-enter["late"])]
    )


def overdue_changes(flights: pd.DataFrame) -> pd.DataFrame:
    """+1 at a flight's scheduled departure if it has not left by then, -1 when it leaves
    or two hours after it was due, whichever comes first."""
    sched = scheduled_departure(flights)
    left = sched + pd.to_timedelta(flights["dep_delay"], unit="min")  # NaT: cancelled
    end = left.where(left < sched + WINDOW, sched + WINDOW)
    late = (end > sched).to_numpy()
    enter = pd.DataFrame({"origin": flights["origin"], "at": sched, "overdue": 1})[late]
    return pd.concat([enter, enter.assign(at=end[late], overdue=-1)])


TIMETABLE = FeatureView(
    "timetable",
    entities=("carrier", "flight", "origin", "sched_dep"),
    event_time="published",
    ttl=None,
    fields=(DEST, DISTANCE, TAILNUM, *TIMETABLE_FIELDS),
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
    fields=PLANE_LAST_LEG_FIELDS,
    build=build_plane_last_leg,
)
AIRPORT_STATE = FeatureView(
    "airport_state",
    entities=("origin",),
    event_time="at",
    ttl=None,
    fields=AIRPORT_STATE_FIELDS,
    build=build_airport_state,
)


def build_departure(raw: Raw) -> pd.DataFrame:
    """Each flight's departure, keyed as in the timetable, known from the moment it left:
    the API does not score a flight that has left (a cancelled one never has a row)."""
    left = departures(raw["flights"])
    keys = left[["carrier", "flight", "origin"]].assign(sched_dep=scheduled_departure(left))
    return keys.assign(departed=left["departed"], dep_delay=left["dep_delay"])


DEPARTURE = FeatureView(
    "departure",
    entities=TIMETABLE.entities,
    event_time="departed",
    ttl=None,
    fields=(Column("dep_delay", "float", description="Departure delay, minutes (< 0: early)"),),
    build=build_departure,
    feature=False,
)
# In lookup order: the timetable names the plane the plane view is looked up by.
VIEWS = {v.name: v for v in (TIMETABLE, WEATHER_VIEW, PLANE_LAST_LEG, AIRPORT_STATE, DEPARTURE)}
# The views a model reads: the offline join and the online lookup read these only.
FEATURE_VIEWS = {name: v for name, v in VIEWS.items() if v.feature}
