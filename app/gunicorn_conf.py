"""Production server: gunicorn managing uvicorn workers (`make serve-prod`, the Dockerfile).

    gunicorn -c app/gunicorn_conf.py app.main:app

Settings come from the environment (src/common/settings.py) so one file serves a laptop and
a container: FD_BIND (default 127.0.0.1:8000; the image sets 0.0.0.0:8000), FD_WORKERS
(default 2), FD_TIMEOUT, FD_GRACEFUL_TIMEOUT, FD_KEEPALIVE, FD_LOG_LEVEL.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from src.common.settings import Settings, SettingsError

# The production profile: the serving fast paths `make bench` shows pay under this server
# (docs/serving.md#fast-paths), set in the workers' environment (raw_env below) unless the
# deployment chose with FD_FAST_PATHS ("none": all off).
PRODUCTION_FAST_PATHS = "lightgbm_c_api,registry_rest,batch_parse"
try:
    settings = Settings()
except SettingsError as exc:  # one line and exit 2, not gunicorn's traceback and exit 1
    print(f"gunicorn: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
bind = settings.bind
workers = settings.workers
worker_class = "app.gunicorn_worker.Worker"  # uvicorn's, with a deadline to read a request
# One OpenMP thread per worker: the workers are the parallelism, and two OpenMP threads per
# process on a small host make everything slower. Set here, where the processes start.
raw_env = ["OMP_NUM_THREADS=1"]
if settings.fast_paths is None:
    raw_env.append(f"FD_FAST_PATHS={PRODUCTION_FAST_PATHS}")
# A worker is restarted if it does not heartbeat for this long (model load included).
timeout = settings.timeout
# On SIGTERM, workers stop accepting, finish in-flight requests and flush the prediction
# log (lifespan shutdown) within this window before they are killed.
graceful_timeout = settings.graceful_timeout
keepalive = settings.keepalive
# No control socket (`gunicornc`): its default path, ~/.gunicorn/gunicorn.ctl, is the same
# for every server a user runs, so a second server would take over the first's and remove
# it on exit. Nothing here uses it; signals do its work (TERM, HUP, TTIN/TTOU).
control_socket_disable = True
# Each worker loads the model itself: preloading in the master would fork a loaded
# LightGBM booster and an MLflow client, neither of which is fork-safe.
preload_app = False
accesslog = None  # request metrics go to /metrics; per-request log lines cost throughput
errorlog = "-"
loglevel = settings.log_level
# FD_LOG_FORMAT=json: gunicorn's own lines (start, workers booted and exited) as JSON too,
# in the format of the app's lines (src/common/logs.py). Complete: gunicorn updates its
# defaults with these keys, so a default logger left out would name a missing handler.
if settings.log_format == "json":
    to_json = {"handlers": ["json"], "propagate": False}
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "src.common.logs.JsonFormatter"}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json"}},
        "root": {"level": settings.log_level.upper(), "handlers": ["json"]},
        "loggers": {"gunicorn.error": to_json, "gunicorn.access": to_json},
    }


# prometheus-client multiprocess mode: each worker writes its counters to files in this
# folder and /metrics (in whichever worker answers) sums them over all workers.
def on_starting(server):
    folder = settings.prometheus_multiproc_dir
    if folder:  # given by the deployment: start from empty counters
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
    else:  # the workers inherit it (prometheus-client reads it when they import it)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="fd-metrics-")


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # drops its live gauges


def on_exit(server):
    folder = Settings().prometheus_multiproc_dir
    if folder and folder.name.startswith("fd-metrics-"):
        shutil.rmtree(folder, ignore_errors=True)
