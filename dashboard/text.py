"""What the dashboard says, as plain functions of the API's answers: probabilities, the
decision, leads and feature ages in words, an explanation's reasons. No Streamlit here."""

from __future__ import annotations

import math
from datetime import datetime

# The feature views of GET /flights' `feature_age_s`, as people name them.
VIEW_NAMES = {
    "timetable": "the timetable",
    "weather": "the weather",
    "plane_last_leg": "the plane's last leg",
    "airport_state": "the airport's state",
}


def percent(p: float | None) -> str:
    """0.41563 -> "41.6%"; None or NaN -> "unknown"."""
    if p is None or not math.isfinite(p):
        return "unknown"
    return f"{100 * p:.1f}%"


def duration(seconds: float) -> str:
    """A length of time in words, to the minute past an hour, to the hour past a day:
    45 -> "45 s", 120 -> "2 min", 4140 -> "1 h 9 min", 561600 -> "6 days 12 h"."""
    s = int(round(abs(seconds)))
    if s < 60:
        return f"{s} s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 3600:
        return f"{minutes} min"
    if s < 86400:
        rest = minutes - 60 * hours
        return f"{hours} h" + (f" {rest} min" if rest else "")
    rest = hours - 24 * days
    return f"{days} day{'s' if days != 1 else ''}" + (f" {rest} h" if rest else "")


def age_in_words(view: str, seconds: float | None) -> str:
    """One feature view's age at the store's clock: "the airport's state is 2 min old"."""
    name = VIEW_NAMES.get(view, view.replace("_", " "))
    if seconds is None or not math.isfinite(seconds):
        return f"{name}: no data (the model scores without it)"
    if seconds < 1:
        return f"{name} is up to date"
    return f"{name} is {duration(seconds)} old"


def lead_in_words(hours: float) -> str:
    """12.0 -> "12 h before departure"; 1.5 -> "1 h 30 min before departure"."""
    return f"{duration(hours * 3600)} before departure"


def moment(text: str | None) -> str:
    """An API timestamp ("2013-08-15T12:00:00Z") as "2013-08-15 12:00 UTC"."""
    if not text:
        return "unknown"
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return when.strftime("%Y-%m-%d %H:%M UTC")


def decision(answer: dict) -> str:
    """The API's decision against its threshold, in words."""
    p, threshold = answer.get("delay_probability"), answer.get("threshold")
    verdict = "Likely delayed" if answer.get("delayed") else "Likely on time"
    if threshold is None:
        return verdict
    sign = "≥" if answer.get("delayed") else "<"
    return f"{verdict}: {percent(p)} {sign} the threshold {percent(threshold)}"


def reasons(answer: dict) -> list[str]:
    """The explanation's reasons, largest first, with the way each pushes: "the timetable:
    +0.42 (towards delayed)"; [] without an explanation."""
    explanation = answer.get("explanation") or {}
    out = []
    for r in explanation.get("reasons") or []:
        said = r.get("text") or f"{r.get('group', '?')}: {r.get('value', 0.0):+.2f}"
        value = r.get("value")
        out.append(said if value is None else f"{said} ({reason_direction(value)})")
    return out


def reason_direction(value: float) -> str:
    """Which way a contribution to the raw score pushes the probability."""
    return "towards delayed" if value > 0 else "towards on time" if value < 0 else "no push"


def flight_title(answer: dict) -> str:
    """ "UA 236 EWR → FLL, scheduled 2013-08-16 00:00 UTC"."""
    route = f"{answer.get('origin', '?')} → {answer.get('dest') or '?'}"
    return f"{answer.get('carrier')} {answer.get('flight')} {route}, scheduled {moment(answer.get('sched_dep'))}"


def auc_gap(loop: float, frozen: float) -> str:
    return f"{loop - frozen:+.4f}"
