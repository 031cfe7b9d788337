"""The dashboard's pages run by Streamlit's AppTest (the script in this process, its widgets
driven by the test): the Flight page against a real API serving the smoke champion with a
fed online store (tests/dashboard/conftest.py), the Model health page against the same API
(its report files: tests/dashboard/test_health_page.py), and both with no API at all (a
closed port)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import text, what_if
from src.common.config import load_config
from src.common.paths import SMOKE_CONFIG
from src.common.servers import free_port, http_json
from tests.dashboard.conftest import APP

CFG = load_config(SMOKE_CONFIG)
TIMEOUT_S = 60  # each rerun: generous on 2 busy cores


def dashboard(monkeypatch, api: str, reports: Path | None = None, page: str = "Flight"):
    monkeypatch.setenv("FD_API_URL", api)
    if reports is not None:
        monkeypatch.setenv("FD_REPORTS_DIR", str(reports))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    if page != "Flight":
        at.sidebar.radio(key="page").set_value(page).run()
    assert not at.exception, at.exception
    return at


def look_up(at: AppTest, carrier="UA", number=236, origin="any") -> AppTest:
    at.text_input(key="carrier").input(carrier)
    at.number_input(key="number").set_value(number)
    at.selectbox(key="origin").select(origin)
    at.button(key="look_up").click().run()
    assert not at.exception, at.exception
    return at


def markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


# ------------------------------------------------------------------ no API (fast)
def test_with_the_api_down_each_page_says_so_in_a_sentence(monkeypatch, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    at = look_up(dashboard(monkeypatch, closed, tmp_path))
    [error] = at.error
    assert error.value.startswith(f"The API at {closed} is not answering")
    assert not at.metric
    at.sidebar.radio(key="page").set_value("Model health").run()
    assert not at.exception
    assert [e.value for e in at.error] == [error.value]
    infos = [i.value for i in at.info]  # no report written yet: each says what to run
    assert len(infos) == 3 and all(i.startswith("Not yet") for i in infos)
    assert "make loop" in infos[0] and "make drift" in infos[1] and "make smoke" in infos[2]


# ------------------------------------------------------------------ the real API (slow)
@pytest.mark.slow
def test_a_flight_shows_the_apis_probability_decision_moment_and_ages(monkeypatch, api_url):
    at = look_up(dashboard(monkeypatch, api_url), origin="EWR")
    assert not at.error and not at.warning
    status, answer = http_json(f"{api_url}/flights/UA/236/2013-08-15?origin=EWR&explain=true")
    assert status == 200, answer
    [metric] = at.metric
    assert metric.value == text.percent(answer["delay_probability"])
    page = markdown(at)
    assert text.decision(answer) in page
    model = f"model {answer['model_name']} v{answer['model_version']}."
    assert f"Features as of 2013-08-15 12:00 UTC, 12 h before departure; {model}" in page
    assert "the airport's state is 2 min old" in page
    assert "the timetable is 6 days 12 h old" in page
    assert at.subheader[0].value == "UA 236 EWR → FLL, scheduled 2013-08-16 00:00 UTC"
    reasons = text.reasons(answer)  # the API explains when it can; the page shows it
    if reasons:
        assert all(f"- {r}" in page for r in reasons)
    else:
        assert at.caption[-1].value == "No explanation in the API's answer."


@pytest.mark.slow
def test_two_origins_are_offered_and_a_departed_flight_shows_its_departure(monkeypatch, api_url):
    at = look_up(dashboard(monkeypatch, api_url))
    [warning] = at.warning
    assert warning.value == "This number leaves from JFK or EWR that day: choose one."
    at.button(key="from_JFK").click().run()
    [info] = at.info
    assert info.value.startswith("Already left at 2013-08-15 10:26 UTC (-4 min")
    assert at.selectbox(key="origin").value == "JFK"
    at = look_up(at, origin="any")
    at.button(key="from_EWR").click().run()
    assert not at.warning and not at.info and len(at.metric) == 1
    look_up(at, number=9999, origin="any")
    [error] = at.error
    assert error.value.startswith("No such flight: no flight UA 9999 on 2013-08-15")


@pytest.mark.slow
def test_model_health_shows_the_champion_the_api_serves(monkeypatch, api_url, tmp_path):
    at = dashboard(monkeypatch, api_url, tmp_path, "Model health")
    status, model = http_json(f"{api_url}/model")
    assert status == 200 and not at.error
    assert at.metric[0].value == f"{CFG.registry.model_name} v{model['version']}"
    lineage = {row[""]: row["value"] for row in at.table[0].value.to_dict("records")}
    assert lineage["run id"] == model["run_id"] and lineage["source"] == model["source"]
    metrics = at.table[1].value.to_dict("records")
    assert {r["metric"] for r in metrics} == set(model["metrics"])


@pytest.mark.slow
def test_the_what_if_scores_the_changed_record_as_post_predict_does(monkeypatch, api_url):
    at = look_up(dashboard(monkeypatch, api_url), origin="EWR")
    status, answer = http_json(f"{api_url}/flights/UA/236/2013-08-15?origin=EWR&features=true")
    assert status == 200, answer
    record, original = answer["features"], answer["delay_probability"]
    for field in what_if.CONTROLS:  # prefilled from the record the API scored
        control = at.slider if field == what_if.HOUR else at.number_input
        assert control(key=f"what_if_{field}").value == what_if.initial(record, field), field
    at.button(key="what_if_score").click().run()
    unchanged = at.session_state["what_if"][0].body["delay_probability"]
    assert unchanged == pytest.approx(original, abs=1e-9)
    assert [m.value for m in at.metric[1:]] == [text.percent(original)] * 2
    assert at.main.caption[-1].value == "Nothing changed."

    at.number_input(key="what_if_precip").set_value(0.5)
    at.number_input(key="what_if_visib").set_value(1.0)
    at.button(key="what_if_score").click().run()
    assert not at.exception and not at.error
    status, direct = http_json(
        f"{api_url}/predict", what_if.changed(record, {"precip": 0.5, "visib": 1.0})
    )
    assert status == 200, direct
    moved = at.session_state["what_if"][0].body["delay_probability"]
    assert moved == pytest.approx(direct["delay_probability"], abs=1e-9)
    assert abs(moved - original) > 1e-3  # the weather moves this flight's probability
    what = at.metric[-1]
    assert what.value == text.percent(moved) and what.delta == what_if.points(moved, original)
    assert at.main.caption[-1].value.startswith("Changed: Precipitation, inches: 0.0 → 0.5; ")


@pytest.mark.slow
def test_a_what_if_the_api_refuses_names_the_field(monkeypatch, api_url):
    at = look_up(dashboard(monkeypatch, api_url), origin="EWR")
    at.number_input(key="what_if_precip").set_value(25.0)  # the schema's bound is 20 inches
    at.button(key="what_if_score").click().run()
    [error] = at.error
    assert error.value.startswith("The API refused the request: precip: ")
    look_up(at, origin="EWR")  # a new lookup: the record's own values, no what-if yet
    assert at.number_input(key="what_if_precip").value == 0.0 and not at.error
