"""The pages users open, checked in a real browser: the API's /docs (with a live "Try it out"),
the MLflow UI's registry and an Evidently drift report. Every page must load from 127.0.0.1
(or the file itself) only."""

from __future__ import annotations

import contextlib
import json
import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from src.common.config import load_config
from src.common.paths import SMOKE_CONFIG
from tests.browser.conftest import screenshot_name

pytestmark = pytest.mark.slow
CFG = load_config(SMOKE_CONFIG)


def assert_only_from(page, *prefixes: str) -> None:
    """Nothing was fetched from anywhere but the given origins (offline pages)."""
    elsewhere = [u for u in page.requests if not u.startswith((*prefixes, "data:", "blob:"))]
    assert not elsewhere, f"page fetched from elsewhere: {elsewhere[:5]}"


def test_docs_render_offline_and_try_it_out_predicts(page, api_url, request):
    page.goto(f"{api_url}/docs")
    operation = page.locator(".opblock-post").filter(
        has=page.locator('.opblock-summary-path[data-path="/predict"]')
    )
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    # The request body is pre-filled with the schema's example flight.
    body = json.loads(operation.locator("textarea.body-param__text").input_value())
    assert body["origin"] == "EWR" and body["carrier"] == "UA"
    operation.get_by_role("button", name="Execute").click()

    live = operation.locator(".live-responses-table")
    status = live.locator("tr.response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    body_text = live.locator("tr.response .response-col_description pre.microlight").first
    answer = json.loads(body_text.inner_text())
    assert 0.0 <= answer["delay_probability"] <= 1.0
    assert answer["model_name"] == CFG.registry.model_name
    assert answer["delayed"] == (answer["delay_probability"] >= answer["threshold"])
    operation.scroll_into_view_if_needed()
    page.screenshot(path=screenshot_name(request.node.nodeid), full_page=True)

    assert_only_from(page, f"{api_url}/")
    assert not page.errors, page.errors


def test_mlflow_ui_lists_the_model_with_its_champion_alias(page, mlflow_url, request):
    name = CFG.registry.model_name
    page.goto(f"{mlflow_url}/#/models")
    page.get_by_role("link", name=name, exact=True).wait_for()
    # On a first visit MLflow may announce its alias-based registry UI in a modal: take it.
    with contextlib.suppress(PlaywrightTimeout):
        page.get_by_role("button", name="Try it now").click(timeout=5_000)
    page.screenshot(path=screenshot_name(request.node.nodeid, "-models"), full_page=True)

    page.get_by_role("link", name=name, exact=True).click()
    page.wait_for_url(re.compile(rf"#/models/{re.escape(name)}$"))
    alias = page.get_by_text(re.compile(rf"^@\s*{CFG.registry.alias}$"))  # "@ champion"
    alias.first.wait_for()
    row = page.locator("tr, [role=row]").filter(has=alias).first
    assert re.search(r"Version\s*1\b", row.inner_text()), row.inner_text()
    page.screenshot(path=screenshot_name(request.node.nodeid, "-model"), full_page=True)

    assert_only_from(page, f"{mlflow_url}/")


def test_drift_report_opens_and_shows_the_checked_columns(page, drift_report, request):
    summary = json.loads(drift_report.with_name("summary.json").read_text())
    page.goto(drift_report.as_uri())
    page.get_by_text("Dataset Drift", exact=True).first.wait_for()
    page.get_by_text("Data Drift Summary").first.wait_for()
    text = page.inner_text("body")
    for column in CFG.drift.columns:
        assert column in text, f"{column} missing from the report"
    # The page's headline agrees with the stage's summary.json.
    drifted, checked = len(summary["drifted_columns"]), len(summary["column_scores"])
    assert f"({drifted} out of {checked})" in text
    assert page.locator(".js-plotly-plot").count() >= 1, "no plot rendered"
    page.screenshot(path=screenshot_name(request.node.nodeid), full_page=True)

    assert_only_from(page, "file://")
    assert not page.errors, page.errors
