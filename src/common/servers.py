"""Start, wait for and stop local servers (the API, MLflow): shared by `python -m src.serve
--check`, the tests and the benchmark. Loopback only; every wait is bounded."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

from src.common.errors import PipelineError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]  # (host, port) for an IPv4 socket
        return port


def http_json(
    url: str, body: dict[str, Any] | None = None, timeout: float = 10
) -> tuple[int, dict[str, Any]]:
    """GET (or POST `body` as JSON); returns (status, decoded body), 4xx/5xx included."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    """Poll `url` until it answers 200; fail fast if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PipelineError(f"server exited with code {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise PipelineError(f"{url}: no 200 within {timeout:.0f} s")


def stop_server(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30
) -> int:
    """Stop a server started with `start_new_session=True`, workers included: `sig` to its
    process group, SIGKILL if it is still running after `timeout` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:  # it exited meanwhile
            proc.wait(timeout=10)
    return proc.returncode
