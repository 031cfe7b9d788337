"""The departures board as plain functions of GET /departures' answer: the table the page
shows (one row a departure, in the API's order), its risk colours, and a row's status in
words. No Streamlit here."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

RISK = "delay risk (%)"  # the sortable column: the probability in percent, empty when none
# Background colours of the risk column: at or above the API's threshold (likely delayed),
# at or above half of it (watch), below; a departure with nothing to predict stays plain.
HIGH, MEDIUM, LOW = "#f6c6c6", "#fbe3b5", "#cfeccf"


def local_time(text: str) -> datetime:
    """An answer's New York moment ("2013-08-15T20:00:00-04:00") as its wall time."""
    return datetime.fromisoformat(text).replace(tzinfo=None)


def status_text(row: dict[str, Any]) -> str:
    """ "scheduled", "left 06:26 (-4 min)", or "overdue (late or cancelled)"."""
    if row["status"] == "departed" and row.get("dep_delay") is not None:
        left = local_time(row["sched_dep_local"]) + timedelta(minutes=row["dep_delay"])
        return f"left {left:%H:%M} ({row['dep_delay']:+.0f} min)"
    if row["status"] == "overdue":
        return "overdue (late or cancelled)"
    return str(row["status"])


def board_frame(answer: dict[str, Any]) -> pd.DataFrame:
    """One row a departure, in the answer's order (by scheduled departure): the frame the
    page shows and sorts. Row i is the answer's flights[i], which a selection relies on."""
    rows = answer.get("flights") or []
    p = [r.get("delay_probability") for r in rows]
    return pd.DataFrame(
        {
            "departs (New York)": [local_time(r["sched_dep_local"]) for r in rows],
            "flight": [f"{r['carrier']} {r['flight']}" for r in rows],
            "to": [r.get("dest") or "?" for r in rows],
            "status": [status_text(r) for r in rows],
            RISK: [None if v is None else 100 * v for v in p],
            "lead (h)": [r.get("lead_hours") for r in rows],
        },
        columns=["departs (New York)", "flight", "to", "status", RISK, "lead (h)"],
    )


def risk_colour(percent: float | None, threshold: float) -> str:
    """The risk cell's CSS: red at or above the threshold (a probability), amber at or
    above half of it, green below; nothing without a probability."""
    if percent is None or not math.isfinite(percent):
        return ""
    p = percent / 100
    colour = HIGH if p >= threshold else MEDIUM if p >= threshold / 2 else LOW
    return f"background-color: {colour}"


def styled(frame: pd.DataFrame, threshold: float) -> Styler:
    """The frame with its risk column coloured and every number shown to one decimal."""
    shown = {RISK: "{:.1f}", "lead (h)": "{:.1f}", "departs (New York)": "{:%a %H:%M}"}
    return frame.style.map(lambda v: risk_colour(v, threshold), subset=[RISK]).format(
        shown, na_rep=""
    )
