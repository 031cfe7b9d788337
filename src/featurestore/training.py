"""Training examples with a moment: each flight scored as of several lead times before its
scheduled departure, with every view's fields as of that moment and the lead as a feature,
so one model serves any lead (issue 24, item 2)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pandas as pd

from src.common.errors import PipelineError
from src.common.schema import DELAY_MINUTES, TARGET
from src.featurestore.offline import as_of
from src.featurestore.views import departures, scheduled_departure

log = logging.getLogger(__name__)

LEADS_HOURS = (1, 2, 4, 6, 24)
# The flight's own schedule in local time, which the request carries beside the store's
# fields (the scheduled hour in UTC is kept for the weather's and the reports' sake).
LOCAL_SCHEDULE = ["year", "month", "day", "hour", "minute", "time_hour"]


def training_examples(
    flights: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    leads_hours: Iterable[float] = LEADS_HOURS,
) -> pd.DataFrame:
    """Each flight that left (EDA-01: a cancelled one has no label) once per lead: its keys,
    `as_of` = scheduled departure - lead (UTC), `lead_hours`, the target and every view's
    fields as of `as_of` (src/featurestore/offline.py). The index is the flight's row in
    `flights`, once per lead, so a caller can add the flight's own request fields.

    A flight that had already left by its moment is not an example at that lead: the state
    views would hold its own departure, and a flight that has left is not scored."""
    leads = [float(lead) for lead in leads_hours]
    if not leads or min(leads) <= 0:
        raise PipelineError(f"leads_hours {leads}: a prediction needs a lead of more than 0 h")
    left = departures(flights)
    base = pd.DataFrame(
        {
            "carrier": left["carrier"],
            "flight": left["flight"],
            "origin": left["origin"],
            "sched_dep": scheduled_departure(left),
            TARGET: (left["dep_delay"] >= DELAY_MINUTES).astype("int8"),
        }
    )
    frames = []
    for lead in leads:
        moment = base["sched_dep"] - pd.Timedelta(hours=lead)
        gone = (left["departed"] <= moment).to_numpy()
        if gone.any():
            log.info(
                "lead %g h: %d flight(s) had left by their moment, not examples", lead, gone.sum()
            )
        examples = base[~gone].assign(as_of=moment[~gone], lead_hours=lead)
        frames.append(as_of(examples, tables))  # per lead: a fifth of the memory at a time
    return pd.concat(frames)


def labelled_examples(
    flights: pd.DataFrame, tables: dict[str, pd.DataFrame], leads_hours: Iterable[float]
) -> pd.DataFrame:
    """training_examples plus each flight's local schedule: every field of a request as
    the feature store knew it at the example's moment, and the label."""
    examples = training_examples(flights, tables, leads_hours)
    local = flights.loc[examples.index, LOCAL_SCHEDULE]
    return examples.assign(**{c: local[c].to_numpy() for c in LOCAL_SCHEDULE})
