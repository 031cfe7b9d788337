"""A real browser on real servers: Debian's chromium driven by Playwright for Python.

Playwright's own browser download (`playwright install`) is never used: the tests launch
/usr/bin/chromium (`make system-deps`), resolve every host name except 127.0.0.1 to
"not found", and check each page loaded nothing from anywhere else. Without chromium the
tests skip with the reason, unless FD_REQUIRE_BROWSER=1 (CI), where they fail.

Screenshots go to reports/test-artifacts/browser/ (FD_TEST_ARTIFACTS overrides the parent),
one per check plus one per failed test, so a CI run can upload them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from src.common.paths import ROOT, SMOKE_CONFIG
from src.common.servers import free_port, stop_server
from tests.conftest import mlflow_server, wait_or_fail

CHROMIUM = Path(os.environ.get("FD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
ARTIFACTS = Path(os.environ.get("FD_TEST_ARTIFACTS", ROOT / "reports" / "test-artifacts"))
SCREENSHOTS = ARTIFACTS / "browser"
SERVER_START_S = 120  # generous: a cold start on 2 busy cores


def server_env() -> dict[str, str]:
    """The test's relocated paths and smoke config; no API key, no telemetry calls out."""
    env = {**os.environ, "FD_CONFIG": str(SMOKE_CONFIG), "OMP_NUM_THREADS": "1"}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    for key in ("FD_API_KEY", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    return env


def screenshot_name(nodeid: str, suffix: str = "") -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::")[-1]) + suffix
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


# ------------------------------------------------------------------------------ browser
@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} not found: `make system-deps` installs Debian's chromium"
        if os.environ.get("FD_REQUIRE_BROWSER") == "1":
            pytest.fail(f"FD_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):  # this run's screenshots only
        old.unlink()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    setattr(item, f"rep_{call.when}", outcome.get_result())


@pytest.fixture
def page(browser, request):
    """A fresh page; `page.requests` lists every URL it asked for (checked by the tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.requests = []
    page.errors = []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        page.screenshot(path=screenshot_name(request.node.nodeid, "-FAILED"), full_page=True)
    context.close()


# ------------------------------------------------------------------------------ servers
@pytest.fixture(scope="module")
def api_url(smoke_pipeline):
    """The API serving the smoke champion under uvicorn on a free loopback port, started the
    way `python -m src.serve` does."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=server_env(), start_new_session=True)
    try:
        wait_or_fail(f"{base}/ready", proc, None, timeout=SERVER_START_S)
        yield base
    finally:
        stop_server(proc, signal.SIGINT)  # graceful: the API flushes its prediction log


@pytest.fixture(scope="module")
def mlflow_url(smoke_pipeline, tmp_path_factory):
    """`mlflow server` on a free loopback port over the smoke pipeline's tracking store."""
    log = tmp_path_factory.mktemp("mlflow-ui") / "server.log"
    backend = f"sqlite:///{smoke_pipeline.mlflow / 'mlflow.db'}"
    with mlflow_server(backend, smoke_pipeline.artifacts, log) as (url, _):
        yield url


@pytest.fixture(scope="module")
def drift_report(smoke_pipeline) -> Path:
    """The smoke config's drift check (March against the January reference): an HTML report."""
    from src import drift

    report = smoke_pipeline.drift_report("2013-03")
    if not report.is_file():
        code = drift.main(["--config", str(SMOKE_CONFIG), "--month", "3"])
        assert code in (drift.EXIT_OK, drift.EXIT_ALERT), f"drift exited {code}"
    return report
