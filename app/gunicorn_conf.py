"""Production server: gunicorn managing uvicorn workers (`make serve-prod`, the Dockerfile).

    gunicorn -c app/gunicorn_conf.py app.main:app

Settings come from the environment so one file serves a laptop and a container:
FD_BIND (default 127.0.0.1:8000; the image sets 0.0.0.0:8000), FD_WORKERS (default 2),
FD_TIMEOUT, FD_GRACEFUL_TIMEOUT, FD_KEEPALIVE.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by every worker

bind = os.environ.get("FD_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("FD_WORKERS", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
# A worker is restarted if it does not heartbeat for this long (model load included).
timeout = int(os.environ.get("FD_TIMEOUT", "60"))
# On SIGTERM, workers stop accepting, finish in-flight requests and flush the prediction
# log (lifespan shutdown) within this window before they are killed.
graceful_timeout = int(os.environ.get("FD_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("FD_KEEPALIVE", "5"))
# Each worker loads the model itself: preloading in the master would fork a loaded
# LightGBM booster and an MLflow client, neither of which is fork-safe.
preload_app = False
accesslog = None  # request metrics go to /metrics; per-request log lines cost throughput
errorlog = "-"
loglevel = os.environ.get("FD_LOG_LEVEL", "info")


# prometheus-client multiprocess mode: each worker writes its counters to files in this
# folder and /metrics (in whichever worker answers) sums them over all workers.
def on_starting(server):
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:  # given by the deployment: start from empty counters
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="fd-metrics-")


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # drops its live gauges


def on_exit(server):
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if Path(folder).name.startswith("fd-metrics-"):
        shutil.rmtree(folder, ignore_errors=True)
