"""Stage 5: serve the champion over HTTP (the FastAPI app in app/main.py).

The app serves models/champion/ at once and follows the registry's alias; without --config
(or FD_CONFIG), with the config the champion was registered with.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from src.common.config import load_config
from src.common.errors import PipelineError
from src.common.logs import run_stage
from src.common.paths import ROOT
from src.common.schema import EXAMPLE_FLIGHT
from src.common.servers import free_port, http_json, stop_server, wait_http
from src.common.settings import Settings

log = logging.getLogger("serve")
# uvicorn reading requests with a deadline, so slow clients are cut off (app/slow_clients.py).
UVICORN = [sys.executable, "-m", "uvicorn", "app.main:app"]
UVICORN += ["--http", "app.slow_clients:DeadlineProtocol"]


def server_env(config: str | Path | None) -> dict[str, str]:
    """The server's environment: ours (passed on, not read), plus FD_CONFIG when given."""
    return {**os.environ, "FD_CONFIG": str(config)} if config else dict(os.environ)


def check(config: str | Path | None) -> None:
    """Start a real server on loopback, score the documented example flight, shut down."""
    base = f"http://127.0.0.1:{(port := free_port())}"
    cmd = [*UVICORN, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=server_env(config), start_new_session=True)
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
    p.add_argument("--config", help="pipeline config YAML (default: FD_CONFIG, else the export's)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--check", action="store_true", help="start, predict once, stop")
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    config = args.config or Settings().config
    if config:  # a bad config fails here, in one line, not as the server's traceback
        load_config(config)
    if args.check:
        check(config)
        return 0
    cmd = [*UVICORN, "--host", args.host, "--port", str(args.port), "--workers", str(args.workers)]
    return subprocess.call(cmd, cwd=ROOT, env=server_env(config))


def main(argv=None) -> int:
    return run_stage("serve", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
