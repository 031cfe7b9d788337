"""`python -m src.serve` as a user runs it: without --check it starts uvicorn on the given
loopback port and answers until stopped; --check with a config the server cannot start with
fails in one line, as soon as the server exits, instead of waiting out its timeout."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from src.common.paths import ROOT, SMOKE_CONFIG
from src.common.schema import EXAMPLE_FLIGHT
from src.common.servers import free_port, http_json
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
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    # The server's own start-up error is shown; then serve's one line says what failed.
    assert f"{missing}: config file not found" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "ERROR   serve: PipelineError: server exited with code" in last
    assert "/ready answered" in last
    assert time.monotonic() - start < 60  # not wait_http's 90 s
