"""The dashboard in a real browser: `streamlit run dashboard/app.py` on a free loopback port,
reading a real API (the smoke champion, an online store fed to 15 August 2013, 12:00 UTC),
driven in Debian's chromium: a flight looked up as a user would, its probability on the
page equal to the API's answer. Nothing is loaded from anywhere but the dashboard."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from dashboard import text
from src.common.paths import ROOT
from src.common.servers import free_port, http_json, stop_server
from tests.browser.conftest import screenshot_name
from tests.browser.test_pages import assert_only_from
from tests.conftest import wait_or_fail
from tests.dashboard.conftest import APP, SERVER_START_S, api_env, fed_data_dir, start_api

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fed_api(smoke_pipeline, tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("dashboard-api")
    data = fed_data_dir(smoke_pipeline, folder / "data")
    yield from start_api(data, folder / "api.log")


@pytest.fixture(scope="module")
def dashboard_url(fed_api, tmp_path_factory) -> Iterator[str]:
    """The dashboard as `make dashboard` runs it, on a free port, reading `fed_api`."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("dashboard") / "streamlit.log"
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", "127.0.0.1"]
    cmd += ["--server.port", str(port), "--server.headless", "true"]
    cmd += ["--browser.gatherUsageStats", "false"]
    env = {**api_env(ROOT / "data"), "FD_API_URL": fed_api}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_or_fail(f"{base}/_stcore/health", proc, log, timeout=SERVER_START_S)
            yield base
        finally:
            stop_server(proc)


def test_a_flight_looked_up_shows_the_apis_probability(page, dashboard_url, fed_api, request):
    page.goto(dashboard_url)
    page.get_by_role("button", name="Look up").click()
    # UA 236 on 15 August leaves from JFK and EWR: the page offers both.
    page.get_by_text("This number leaves from JFK or EWR that day").wait_for()
    page.get_by_role("button", name="From EWR").click()
    value = page.locator('[data-testid="stMetricValue"]')
    value.wait_for()
    status, answer = http_json(f"{fed_api}/flights/UA/236/2013-08-15?origin=EWR")
    assert status == 200, answer
    assert value.inner_text().strip() == text.percent(answer["delay_probability"])
    page.get_by_text("the airport's state is 2 min old").wait_for()
    page.screenshot(path=screenshot_name(request.node.nodeid), full_page=True)
    assert_only_from(page, f"{dashboard_url}/")
    assert not page.errors, page.errors


def test_model_health_shows_the_champion_the_api_serves(page, dashboard_url, fed_api, request):
    page.goto(dashboard_url)
    page.get_by_text("Model health", exact=True).click()
    status, model = http_json(f"{fed_api}/model")
    assert status == 200, model
    value = page.locator('[data-testid="stMetricValue"]')
    value.wait_for()
    assert value.inner_text().strip() == f"{model['name']} v{model['version']}"
    page.get_by_text(model["run_id"], exact=True).first.wait_for()  # the lineage table (and card)
    page.screenshot(path=screenshot_name(request.node.nodeid), full_page=True)
    assert_only_from(page, f"{dashboard_url}/")
    assert not page.errors, page.errors
