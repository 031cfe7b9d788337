"""`python -m src.serve` as a user runs it: without --check it starts uvicorn on the given
loopback port and answers until stopped; --check with a config the server cannot start with
fails in one line before any server starts; a server that exits at start-up is reported at
once, instead of waiting out the timeout."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from src.common.errors import PipelineError
from src.common.paths import ROOT, SMOKE_CONFIG
from src.common.schema import EXAMPLE_FLIGHT
from src.common.servers import free_port, http_json, wait_http
from tests.conftest import server_process, wait_or_fail

pytestmark = pytest.mark.slow


def test_serve_answers_on_the_port_it_is_given(smoke_pipeline, tmp_path):
    port = free_port()
    cmd = [sys.executable, "-m", "src.serve", "--config", str(SMOKE_CONFIG), "--port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = tmp_path / "serve.log"
    with server_process(cmd, env, log) as proc:
        base = f"http://127.0.0.1:{port}"  # the default host: loopback
        wait_or_fail(f"{base}/ready", proc, log)
        status, body = http_json(f"{base}/predict", EXAMPLE_FLIGHT)
        assert status == 200 and 0 <= body["delay_probability"] <= 1
        assert body["model_name"] == "flight-delay-smoke"


def test_check_with_a_missing_config_fails_in_one_line_at_once(smoke_pipeline, tmp_path):
    missing = tmp_path / "no-such-config.yml"
    cmd = [sys.executable, "-m", "src.serve", "--config", str(missing), "--check"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    # Checked before any server starts: one line, no server traceback.
    (line,) = done.stderr.strip().splitlines()
    assert line.endswith(f"ERROR   serve: PipelineError: {missing}: config file not found")


def test_wait_http_fails_as_soon_as_the_server_exits():
    """A server that dies at start-up is reported at once, not after the 90 s timeout."""
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    start = time.monotonic()
    with pytest.raises(PipelineError, match="server exited with code 3 before .* answered"):
        wait_http(f"http://127.0.0.1:{free_port()}/ready", proc, timeout=90)
    assert time.monotonic() - start < 30
