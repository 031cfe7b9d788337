"""The Departures board page: an airport's departures in a window (GET /departures, every
flight scored by the API in one call), sortable and coloured by risk; a row selected shows
that flight's reasons (GET /flights?explain=true, one flight). It follows the store's clock:
Refresh asks again, and "Follow the clock" asks every FOLLOW_S seconds, so a replay
advancing the store moves the board."""

from __future__ import annotations

import time
from datetime import timedelta

import streamlit as st

from dashboard import board, client, flight_page, text

ORIGINS = ("EWR", "JFK", "LGA")
FOLLOW_S = 10  # how often a followed board asks again


def asked() -> tuple:
    """The inputs a board answers: origin, start (None: the store's clock), hours."""
    s = st.session_state
    return (s["board_origin"], s["board_start"], s["board_hours"])


def fetch() -> None:
    """Ask the API for the board of the inputs; kept for the reruns that follow. Stamped
    before the call, so a followed board asks again every FOLLOW_S seconds, not every other
    tick. A board whose flights changed drops the selected row: Streamlit keeps a selection
    by position, which would now point at another flight."""
    origin, start, hours = asked()
    s = st.session_state
    s["board_asked"], s["board_fetched_at"] = asked(), time.monotonic()
    before = flight_keys(s.get("board_result"))
    s["board_result"] = client.departures(
        origin, None if start is None else f"{start:%H:%M}", hours
    )
    if flight_keys(s["board_result"]) != before:
        s.pop("board_table", None)


def flight_keys(result: client.Result | None) -> list[tuple]:
    """The board's flights, in its order ([] without a board)."""
    if result is None or not result.ok:
        return []
    return [(r["carrier"], r["flight"], r["sched_dep"]) for r in result.body["flights"]]


def page() -> None:
    st.header("Departures board")
    st.caption(
        f"Asks the API at {client.api_url()}: GET /departures/{{origin}}, every flight scored "
        "in one call; a row's reasons: GET /flights/…?explain=true"
    )
    origin, start, hours = st.columns(3)
    origin.selectbox("From", ORIGINS, key="board_origin")
    start.time_input(
        "Start (New York)",
        value=None,
        step=timedelta(minutes=30),
        key="board_start",
        help="Empty: the store's clock, so the board moves with it",
    )
    hours.number_input("Hours", min_value=1, max_value=24, value=6, key="board_hours")
    refresh, follow = st.columns(2)
    refresh.button("Refresh", on_click=fetch, key="board_refresh")
    following = follow.toggle(f"Follow the clock (every {FOLLOW_S} s)", key="board_follow")
    # A fragment: a selection, or the follow's tick, redraws the board alone.
    st.fragment(show_board, run_every=FOLLOW_S if following else None)()


def show_board() -> None:
    s = st.session_state
    fetched = s.get("board_fetched_at", 0.0)
    stale = s.get("board_follow") and time.monotonic() - fetched >= FOLLOW_S
    if s.get("board_asked") != asked() or stale:
        fetch()
    result: client.Result = s["board_result"]
    if not result.ok:
        st.error(result.message)
        return
    answer = result.body
    rows = answer["flights"]
    scored = sum(r["status"] == "scheduled" for r in rows)
    st.markdown(
        f"**{answer['origin']}**, as of {text.moment(answer['as_of'])}: {len(rows)} departures "
        f"from {text.moment(answer['start'])} to {text.moment(answer['end'])}, {scored} "
        f"still to leave; model {answer['model_name']} v{answer['model_version']}, "
        f"threshold {text.percent(answer['threshold'])}."
    )
    if not rows:
        st.info("No departures in this window.")
        return
    frame = board.board_frame(answer)
    event = st.dataframe(
        board.styled(frame, answer["threshold"]),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="board_table",
    )
    picked = [i for i in event.selection.rows if i < len(rows)]
    if picked:
        show_selected(rows[picked[0]])
    else:
        st.caption("Select a row for that flight's reasons.")


def show_selected(row: dict) -> None:
    """The selected flight's reasons in words, asked once per flight and clock."""
    st.subheader(text.flight_title(row))
    if row["status"] != "scheduled":
        st.info(f"Nothing to predict: {board.status_text(row)}.")
        return
    s = st.session_state
    wanted = (row["carrier"], row["flight"], row["sched_dep"], s["board_result"].body["as_of"])
    if s.get("board_why_for") != wanted:
        day = board.local_time(row["sched_dep_local"]).date()
        s["board_why"] = client.flight(row["carrier"], row["flight"], day, row["origin"])
        s["board_why_for"] = wanted
    why: client.Result = s["board_why"]
    if not why.ok:
        st.error(why.message)
        return
    st.markdown(f"**{text.decision(why.body)}**")
    flight_page.show_reasons(why.body)
