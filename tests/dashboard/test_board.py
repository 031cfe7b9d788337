"""The Departures board page: its table and colours as plain functions (dashboard/board.py),
its client call (GET /departures), and the page in Streamlit's AppTest, with no API (a
closed port) and against a real API serving the smoke champion on a SQLite store fed to
15 August 2013, 12:00 UTC (tests/dashboard/conftest.py), which the last test feeds on to
14:00 while the page is open: Refresh shows the board at the new clock."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import board, client, text
from src.common.servers import free_port, http_json
from tests.dashboard.conftest import APP, fed_data_dir, start_api
from tests.dashboard.test_client import canned

TIMEOUT_S = 60  # each rerun: generous on 2 busy cores
LATER = pd.Timestamp("2013-08-15T14:00Z")  # where the last test moves the store's clock

DEPARTED = {
    "carrier": "UA",
    "flight": 236,
    "origin": "JFK",
    "dest": "FLL",
    "sched_dep": "2013-08-15T10:30:00Z",
    "sched_dep_local": "2013-08-15T06:30:00-04:00",
    "status": "departed",
    "departed": "2013-08-15T10:26:00Z",
    "dep_delay": -4.0,
    "delay_probability": None,
    "delayed": None,
    "lead_hours": None,
}
OVERDUE = {**DEPARTED, "flight": 1, "status": "overdue", "departed": None, "dep_delay": None}
SCHEDULED = {
    **DEPARTED,
    "flight": 2,
    "sched_dep": "2013-08-15T23:00:00Z",
    "sched_dep_local": "2013-08-15T19:00:00-04:00",
    "status": "scheduled",
    "departed": None,
    "dep_delay": None,
    "delay_probability": 0.41563,
    "delayed": True,
    "lead_hours": 11.0,
}


# ------------------------------------------------------------------ plain functions (fast)
def test_the_table_keeps_the_answers_order_and_says_each_status():
    frame = board.board_frame({"flights": [DEPARTED, OVERDUE, SCHEDULED]})
    assert list(frame["flight"]) == ["UA 236", "UA 1", "UA 2"]
    assert list(frame["status"]) == [
        "left 06:26 (-4 min)",
        "overdue (late or cancelled)",
        "scheduled",
    ]
    assert list(frame["departs (New York)"].dt.strftime("%H:%M")) == ["06:30", "06:30", "19:00"]
    risk = frame[board.RISK]
    assert risk.isna().tolist() == [True, True, False] and risk[2] == 100 * 0.41563
    assert frame["lead (h)"].tolist()[2] == 11.0
    assert board.board_frame({"flights": []}).empty


def test_the_risk_colour_follows_the_threshold():
    assert board.risk_colour(30.0, 0.3) == f"background-color: {board.HIGH}"
    assert board.risk_colour(29.9, 0.3) == f"background-color: {board.MEDIUM}"
    assert board.risk_colour(15.0, 0.3) == f"background-color: {board.MEDIUM}"
    assert board.risk_colour(14.9, 0.3) == f"background-color: {board.LOW}"
    assert board.risk_colour(None, 0.3) == board.risk_colour(float("nan"), 0.3) == ""
    html = board.styled(board.board_frame({"flights": [DEPARTED, SCHEDULED]}), 0.3).to_html()
    assert board.HIGH in html and "41.6" in html and board.LOW not in html


def test_the_client_asks_for_the_window_and_says_a_refusal_in_words():
    with canned([(200, {"flights": []})]) as (url, seen):
        assert client.departures("EWR", "05:00", 6, base=url).ok
        assert client.departures("JFK", base=url).ok
    assert [p for p, _ in seen] == ["/departures/EWR?start=05%3A00&hours=6", "/departures/JFK"]
    detail = [{"loc": ["query", "hours"], "msg": "Input should be less than or equal to 24"}]
    with canned([(422, {"detail": detail})]) as (url, _):
        r = client.departures("EWR", hours=25, base=url)
    assert (
        r.message == "The API refused the request: hours: Input should be less than or equal to 24"
    )
    with canned([(503, {"detail": "the online store is empty"})]) as (url, _):
        r = client.departures("EWR", base=url)
    assert r.message == "The API cannot answer yet: the online store is empty"


# ------------------------------------------------------------------ the page
def board_page(monkeypatch, api: str) -> AppTest:
    monkeypatch.setenv("FD_API_URL", api)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    at.sidebar.radio(key="page").set_value("Departures board").run()
    assert not at.exception, at.exception
    return at


def markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_with_the_api_down_the_board_says_so_in_a_sentence(monkeypatch):
    closed = f"http://127.0.0.1:{free_port()}"
    at = board_page(monkeypatch, closed)
    [error] = at.error
    assert error.value.startswith(f"The API at {closed} is not answering")
    assert not at.dataframe


def api_on_a_fed_store(smoke_pipeline, tmp_path_factory, name: str):
    """The API on a store fed to CLOCK; yields its URL and the store's file."""
    folder = tmp_path_factory.mktemp(name)
    data = fed_data_dir(smoke_pipeline, folder / "data")
    for url in start_api(data, folder / "api.log"):
        yield url, data / "online" / "features.sqlite"


@pytest.fixture(scope="module")
def fed_api(smoke_pipeline, tmp_path_factory):
    yield from api_on_a_fed_store(smoke_pipeline, tmp_path_factory, "board-api")


@pytest.fixture
def moving_api(smoke_pipeline, tmp_path_factory):
    """Its own API and store, which the test feeds on: fed_api's clock stays CLOCK."""
    yield from api_on_a_fed_store(smoke_pipeline, tmp_path_factory, "board-api-moving")


def show(at: AppTest, origin: str, start: time | None, hours: int) -> AppTest:
    at.selectbox(key="board_origin").select(origin)
    at.time_input(key="board_start").set_value(start)
    at.number_input(key="board_hours").set_value(hours).run()
    assert not at.exception, at.exception
    return at


@pytest.mark.slow
def test_the_board_shows_the_apis_answer_as_of_its_clock(monkeypatch, fed_api):
    url, _ = fed_api
    at = show(board_page(monkeypatch, url), "EWR", time(5, 0), 6)
    status, answer = http_json(f"{url}/departures/EWR?start=05:00&hours=6")
    assert status == 200 and not at.error
    [table] = at.dataframe
    shown = table.value
    rows = answer["flights"]
    assert list(shown["flight"]) == [f"{r['carrier']} {r['flight']}" for r in rows]
    assert list(shown["status"]) == [board.status_text(r) for r in rows]
    want = [None if r["delay_probability"] is None else 100 * r["delay_probability"] for r in rows]
    assert [None if pd.isna(v) else v for v in shown[board.RISK]] == want
    assert {r["status"] for r in rows} == {"departed", "overdue", "scheduled"}
    page = markdown(at)
    assert "as of 2013-08-15 12:00 UTC" in page and f"{len(rows)} departures" in page
    assert "Select a row for that flight's reasons." in [c.value for c in at.caption]


@pytest.mark.slow
def test_a_selected_row_shows_that_flights_reasons_in_words(monkeypatch, fed_api):
    url, _ = fed_api
    at = show(board_page(monkeypatch, url), "EWR", time(5, 0), 6)
    rows = http_json(f"{url}/departures/EWR?start=05:00&hours=6")[1]["flights"]
    i = next(i for i, r in enumerate(rows) if r["status"] == "scheduled")
    at.session_state["board_table"] = {"selection": {"rows": [i], "columns": []}}
    at.run()
    assert not at.exception and not at.error, at.exception
    row = rows[i]
    path = f"/flights/{row['carrier']}/{row['flight']}/2013-08-15?origin=EWR&explain=true"
    status, answer = http_json(url + path)
    assert status == 200, answer
    assert at.subheader[-1].value == text.flight_title(row)
    page = markdown(at)
    assert text.decision(answer) in page
    reasons = text.reasons(answer)
    assert reasons and all(f"- {r}" in page for r in reasons)
    gone = next(i for i, r in enumerate(rows) if r["status"] == "departed")
    at.session_state["board_table"] = {"selection": {"rows": [gone], "columns": []}}
    at.run()
    [info] = at.info
    assert info.value == f"Nothing to predict: {board.status_text(rows[gone])}."


@pytest.mark.slow
def test_refresh_follows_the_store_as_the_feed_moves_it(monkeypatch, moving_api, smoke_pipeline):
    """The board from the clock (no start) moves with the store: fed on to LATER, Refresh
    shows the board as of LATER, starting there."""
    from src.common.config import load_config
    from src.common.paths import SMOKE_CONFIG
    from src.data.validate import read_snapshot
    from src.featurestore.offline import build_views
    from src.featurestore.online import feed
    from src.featurestore.online_sqlite import SQLiteStore

    url, store_file = moving_api
    at = show(board_page(monkeypatch, url), "LGA", None, 3)
    assert "as of 2013-08-15 12:00 UTC" in markdown(at)
    before = at.dataframe[0].value
    tables = build_views(read_snapshot(smoke_pipeline, load_config(SMOKE_CONFIG).snapshot))
    with SQLiteStore(Path(store_file)) as store:
        feed(store, tables, until=LATER)  # resumes after CLOCK
    at.button(key="board_refresh").click().run()
    assert not at.exception and not at.error
    page = markdown(at)
    assert "as of 2013-08-15 14:00 UTC" in page and "from 2013-08-15 14:00 UTC" in page
    after = at.dataframe[0].value
    assert after["departs (New York)"].min() >= pd.Timestamp("2013-08-15T10:00")
    assert list(after["flight"]) != list(before["flight"])
