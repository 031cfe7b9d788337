"""Stage 5: serve the champion over HTTP (the FastAPI app in app/main.py).

    python -m src.serve [--config configs/default.yml] [--host 127.0.0.1] [--port 8000]
    python -m src.serve --check   # start on a free loopback port, predict once, stop

The app loads the champion from the registry alias when reachable, else models/champion/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from src.common.errors import PipelineError
from src.common.logs import run_stage
from src.common.paths import DEFAULT_CONFIG, ROOT

log = logging.getLogger("serve")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, body: dict | None = None, timeout: float = 10) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
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


def stop_server(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
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


def check(config: str) -> None:
    """Start a real server on loopback, score the documented example flight, shut down."""
    from app.schemas import EXAMPLE_FLIGHT

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "FD_CONFIG": str(config), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    try:
        wait_http(f"{base}/ready", proc)
        status, body = http_json(f"{base}/predict", EXAMPLE_FLIGHT)
        if status != 200 or not 0 <= body.get("delay_probability", -1) <= 1:
            raise PipelineError(f"{base}/predict: unexpected answer {status} {body}")
        log.info("served %s v%s: %s", body["model_name"], body["model_version"], body)
    finally:
        stop_server(proc, signal.SIGINT, timeout=20)  # graceful: flushes the prediction log


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.serve", description=__doc__.split("\n")[0])
    p.add_argument("--config", default=DEFAULT_CONFIG, help="pipeline config YAML")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--check", action="store_true", help="start, predict once, stop")
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    if args.check:
        check(args.config)
        return 0
    os.environ["FD_CONFIG"] = str(args.config)
    import uvicorn

    uvicorn.run("app.main:app", host=args.host, port=args.port, workers=args.workers)
    return 0


def main(argv=None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return run_stage("serve", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
