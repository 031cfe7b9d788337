"""A throwaway Redis server for the online store's tests: Debian's redis-server on a free
127.0.0.1 port, no persistence (nothing saved, no append-only file), its working folder a
temporary one. The wait for PING is bounded; the server is stopped whatever happens."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from src.common.servers import free_port, stop_server

START_S = 30  # for the server to answer PING


def missing(reason: str) -> None:
    """Skip with the reason, except in CI (CI set), where it fails: CI installs redis-server
    (`make system-deps`). As postgres_support.py's missing() does."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def wait_ping(url: str, proc: subprocess.Popen, log: Path, timeout: float = START_S) -> None:
    """PING until the server answers: at most `timeout` s and 300 tries; fails at once if
    the server exits."""
    client = redis.Redis.from_url(url, socket_timeout=2)
    deadline = time.monotonic() + timeout
    try:
        for _ in range(300):
            if proc.poll() is not None:
                break
            try:
                if client.ping():
                    return
            except redis.RedisError:  # refused, reset or timed out: not up yet
                pass
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
    finally:
        client.close()
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    raise RuntimeError(f"redis-server not answering PING on {url} within {timeout:.0f} s:\n{tail}")


@contextmanager
def redis_server() -> Iterator[str]:
    """redis-server on a free loopback port, without persistence; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server not found: `make system-deps` installs it")
    root = Path(tempfile.mkdtemp(prefix="fd-redis-"))
    port, log = free_port(), root / "server.log"
    cmd = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root)]
    cmd += ["--save", "", "--appendonly", "no", "--logfile", str(log)]
    proc = subprocess.Popen(cmd, cwd=root, start_new_session=True)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_ping(url, proc, log)
        yield url
    finally:
        stop_server(proc, timeout=30)
        shutil.rmtree(root, ignore_errors=True)
