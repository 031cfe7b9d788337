"""Slow clients are cut off (app/slow_clients.py), under gunicorn and under `make serve`
(python -m src.serve): 50 clients that send nothing, their headers a byte at a time or their
body a byte at a time are each disconnected REQUEST_SECONDS after they connect, and while
they hang on, the server answers everyone else. On 127.0.0.1; every client is bounded."""

from __future__ import annotations

import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.slow_clients import REQUEST_SECONDS
from src.common.schema import EXAMPLE_FLIGHT
from src.common.servers import free_port, http_json
from tests.conftest import gunicorn, server_process, wait_or_fail

pytestmark = pytest.mark.slow
CROWD = 50
DRIP_SECONDS = 0.5  # between two bytes of a slow client
HEADERS = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
# What each kind of client sends at once, then what it sends a byte at a time.
KINDS = {
    "nothing": (b"", b""),
    "headers": (b"", HEADERS + b"X-Padding: " + b"a" * 200),
    "body": (HEADERS + b"Content-Length: 5000\r\n\r\n{", b" " * 200),
    # A batch's body is read by the route itself (app/batch_fast_path.py under gunicorn's
    # production profile): the cut-off reaches it as a client gone, not as an error.
    "batch body": (
        HEADERS.replace(b"/predict", b"/predict/batch") + b"Content-Length: 5000\r\n\r\n{",
        b" " * 200,
    ),
}


def slow_client(port: int, kind: str) -> float | None:
    """Seconds from connecting until the server closed the connection; None if it was still
    open REQUEST_SECONDS + 10 s later."""
    at_once, drip = KINDS[kind]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(at_once)
        sock.settimeout(DRIP_SECONDS)
        for i in range(int((REQUEST_SECONDS + 10) / DRIP_SECONDS)):
            try:
                if sock.recv(4096) == b"":  # the server closed it
                    return time.monotonic() - start
            except TimeoutError:
                pass
            except ConnectionResetError:
                return time.monotonic() - start
            if i < len(drip):
                try:
                    sock.sendall(drip[i : i + 1])
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - start
    return None


def crowd_and_others(port: int) -> tuple[dict[str, list[float | None]], list[int], float]:
    """CROWD slow clients (the kinds in turn) and, while they hang on, 20 ordinary requests:
    (seconds until each slow client was closed, by kind; the ordinary answers' statuses;
    seconds the ordinary requests took)."""
    kinds = [list(KINDS)[i % len(KINDS)] for i in range(CROWD)]
    with ThreadPoolExecutor(CROWD) as pool:
        closed = [pool.submit(slow_client, port, kind) for kind in kinds]
        time.sleep(1)  # all connected, none yet near its deadline
        start = time.monotonic()
        statuses = [
            http_json(f"http://127.0.0.1:{port}/predict", EXAMPLE_FLIGHT)[0] for _ in range(20)
        ]
        others = time.monotonic() - start
        by_kind: dict[str, list[float | None]] = {kind: [] for kind in KINDS}
        for kind, future in zip(kinds, closed, strict=True):
            by_kind[kind].append(future.result(timeout=REQUEST_SECONDS + 30))
    return by_kind, statuses, others


def assert_cut_off(by_kind, statuses, others) -> None:
    assert statuses == [200] * 20
    assert others < REQUEST_SECONDS - 1  # answered while the crowd was still connected
    for kind, seconds in by_kind.items():
        assert None not in seconds, f"{kind}: {seconds.count(None)} clients never cut off"
        # At the deadline: not before it (it is the deadline that closed them), and not
        # much after (a busy 2-core machine may delay the timer by a second or two).
        assert min(seconds) > REQUEST_SECONDS - 0.5, (kind, seconds)
        assert max(seconds) < REQUEST_SECONDS + 4, (kind, seconds)


def test_gunicorn_cuts_off_slow_clients(smoke_pipeline, tmp_path):
    log = tmp_path / "gunicorn.log"
    with gunicorn({"FD_DATA_DIR": str(tmp_path)}, log=log) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        assert_cut_off(*crowd_and_others(port))
    assert "sent no whole request in 10 s: closed" in log.read_text()
    assert "Traceback" not in log.read_text()


def test_make_serve_cuts_off_slow_clients(smoke_pipeline, tmp_path):
    port = free_port()
    cmd = [sys.executable, "-m", "src.serve", "--port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FD_DATA_DIR": str(tmp_path)}
    log = tmp_path / "serve.log"
    with server_process(cmd, env, log) as proc:
        wait_or_fail(f"http://127.0.0.1:{port}/ready", proc, log)
        assert_cut_off(*crowd_and_others(port))
    assert "Traceback" not in log.read_text()
