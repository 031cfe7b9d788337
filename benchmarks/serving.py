"""Serving benchmark: this API under gunicorn, with its fast paths on and off and with a
challenger in the shadow, vs `mlflow models serve`, all serving the same champion.

    python -m benchmarks.serving [--config configs/default.yml] [--rounds 3] [--duration 10]

The servers run on 127.0.0.1 with 2 workers and OMP_NUM_THREADS=1: `mlflow models serve`,
this API as configured (`app`: `serve.fast_paths` as the config gives them), this API with
every fast path off (`app_plain`: lightgbm.Booster and MlflowClient), and this API as
configured with @challenger set (`app_shadow`: every request also scored by the challenger,
off the request path). They read a copy of the local tracking store, where the champion's
model is registered twice under a name of the bench's own, @champion and @challenger, for
`app_shadow` (the shadow then costs what scoring the champion once more costs). wrk (closed
loop, 16 connections, benchmarks/wrk_report.lua) drives them interleaved, the first rotating
each round, with distinct real flights from the test split: one flight per request (every
server), the same one flight in every request (`single_fixed`: all but `app_shadow`; both
servers then parse the same body every time), then batches of 1000 as records and as columns
(all but `app_shadow`); the app's /bench/echo route gives the HTTP stack's ceiling. Each run
records the servers' CPU per request, wrk's, and the load before it and the CPU other
processes used meanwhile (these machines are shared); the result holds the run's conditions
(benchmarks/conditions.py: machine, load, versions, commit) and each ratio's value round by
round with its range. Writes reports/bench/serving.json, prints the figures and the
conditions, warns if the machine was busy, and exits 1 if a goal is missed. The speed
and memory goals hold `app` only; `app_plain`'s figures are reported beside them, and
`app_shadow` has a goal of its own (one-flight throughput vs `app`). Parity covers both
model paths, and no-errors every server.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import yaml

from benchmarks import conditions
from src.common.config import Config, FastPaths, config_from_dict, load_config
from src.common.errors import PipelineError
from src.common.io import write_json
from src.common.logs import run_stage
from src.common.paths import DEFAULT_CONFIG, ROOT, Paths, get_paths
from src.common.schema import REQUEST_FIELDS
from src.common.servers import free_port, http_json, stop_server, wait_http
from src.model.features import request_records
from src.serving.loader import CHALLENGER

log = logging.getLogger("bench")
WORKERS = 2
WRK_SCRIPT = Path(__file__).with_name("wrk_report.lua")
# This API with its fast paths as configured, with all off, and as configured with a challenger
# scored in the shadow.
APPS = ("app", "app_plain", "app_shadow")
SERVERS = ("mlflow", *APPS)
COMPARED = ("mlflow", "app", "app_plain")  # the servers every scenario runs on
PLAIN_PATHS = {name: False for name in FastPaths.model_fields}  # every switch off
# scenario -> (server, path). Batches go as records (the guarded figure), and as columns:
# this API's `columns` body against MLflow's `inputs`, the same one-list-per-field JSON. The
# echo route has no model, so one app variant is enough for it.
SCENARIOS = {
    "single": [
        ("mlflow", "/invocations"),
        ("app", "/predict"),
        ("app_plain", "/predict"),
        ("app_shadow", "/predict"),
        ("echo", "/bench/echo"),
    ],
    # One flight, the same body in every request: the servers' request parsing on equal terms
    # (distinct flights differ in length and values from one request to the next).
    "single_fixed": [
        ("mlflow", "/invocations"),
        ("app", "/predict"),
        ("app_plain", "/predict"),
    ],
    "batch": [
        ("mlflow", "/invocations"),
        ("app", "/predict/batch"),
        ("app_plain", "/predict/batch"),
    ],
    "batch_columns": [
        ("mlflow", "/invocations"),
        ("app", "/predict/batch"),
        ("app_plain", "/predict/batch"),
    ],
}
SERVED_BY = {"echo": "app"}  # the echo route runs in the `app` server
ONE_FLIGHT = ("single", "single_fixed")  # scenarios of one flight per request
# Compared figures: name -> (scenario, median key).
METRICS = {
    "single_rps": ("single", "rps"),
    "single_p99": ("single", "p99_ms"),
    "single_fixed_rps": ("single_fixed", "rps"),
    "single_fixed_p99": ("single_fixed", "p99_ms"),
    "batch_rows": ("batch", "rows_per_s"),
    "batch_p99": ("batch", "p99_ms"),
    "batch_columns_rows": ("batch_columns", "rows_per_s"),
    "batch_columns_p99": ("batch_columns", "p99_ms"),
    "startup": ("startup", "seconds"),
    "rss": ("rss", "mib"),
}
# The acceptance, on medians of rounds with the fast paths on (`app`), plus a guard
# for record batches so the one-flight work cannot cost them.
LIMITS = {
    "single_rps_vs_mlflow": (">=", 9),
    "single_p99_vs_mlflow": ("<=", 0.2),
    "batch_rows_vs_mlflow": (">=", 1.8),
    "batch_p99_vs_mlflow": ("<=", 0.5),
    "startup_vs_mlflow": ("<=", 0.4),
    "rss_vs_mlflow": ("<=", 0.6),
    # The challenger in the shadow costs at most 10% of one-flight throughput.
    "shadow_single_rps_vs_app": (">=", 0.90),
}
GOALS = {
    "1_single": ("single_rps_vs_mlflow", "single_p99_vs_mlflow"),
    "2_batch_guard": ("batch_rows_vs_mlflow", "batch_p99_vs_mlflow"),
    "3_startup_memory": ("startup_vs_mlflow", "rss_vs_mlflow"),
    "6_shadow_cost": ("shadow_single_rps_vs_app",),
}
# app_shadow vs app: name -> metric (METRICS).
SHADOW_METRICS = {"single_rps": "single_rps", "single_p99": "single_p99", "rss": "rss"}
PARITY_TOLERANCE = 1e-9  # expected 0.0: the same C++ predictor on the same features
MEDIAN_KEYS = (
    "rps",
    "rows_per_s",
    "p50_ms",
    "p99_ms",
    "server_cpu_ms_per_request",
    "main_thread_cpu_share",
    "wrk_cpu_share",
    "other_cpu_share",
    "steal_share",
)


# ------------------------------------------------------------------ request bodies
def read_test_flights(paths: Paths) -> pd.DataFrame:
    return pd.read_parquet(paths.processed_file("test"), columns=list(REQUEST_FIELDS))


def flight_records(paths: Paths, n: int) -> list[dict]:
    test = read_test_flights(paths)
    return request_records(test.sample(n=min(n, len(test)), random_state=0))


def as_columns(records: list[dict]) -> dict[str, list]:
    return {f: [r[f] for r in records] for f in REQUEST_FIELDS}


def write_bodies(folder: Path, records: list[dict], batch_rows: int) -> dict[tuple, Path]:
    """One JSON body per line, per (scenario, server format)."""
    batches = [records[i : i + batch_rows] for i in range(0, len(records), batch_rows)]
    bodies = {
        ("single", "app"): records,
        ("single", "mlflow"): [{"dataframe_records": [r]} for r in records],
        ("single_fixed", "app"): records[:1],
        ("single_fixed", "mlflow"): [{"dataframe_records": records[:1]}],
        ("batch", "app"): [{"flights": b} for b in batches],
        ("batch", "mlflow"): [{"dataframe_records": b} for b in batches],
        ("batch_columns", "app"): [{"columns": as_columns(b)} for b in batches],
        ("batch_columns", "mlflow"): [{"inputs": as_columns(b)} for b in batches],
    }
    files = {}
    for (scenario, fmt), items in bodies.items():
        files[scenario, fmt] = folder / f"{scenario}-{fmt}.jsonl"
        files[scenario, fmt].write_text("".join(json.dumps(b) + "\n" for b in items))
    return files


# ------------------------------------------------------------------ servers
@dataclass
class Bench:
    """What every server start and wrk run needs."""

    cfg: Config
    paths: Paths
    args: argparse.Namespace
    scratch: Path  # the store's copy, bodies, server logs, the apps' prediction logs and metrics
    configs: dict[str, Path]  # FD_CONFIG per app variant
    store: str  # the tracking store's copy (a SQLite URI) the bench's tracking server serves
    registry: str = ""  # the tracking server's URL, once it runs


def without_fast_paths(cfg: Config) -> Config:
    """The same config with every `serve.fast_paths` switch off: the plain path."""
    raw = cfg.model_dump(mode="json")
    raw["serve"]["fast_paths"] = dict(PLAIN_PATHS)
    return config_from_dict(raw, f"{cfg.name} without fast paths")


def serving_name(cfg: Config, name: str) -> Config:
    """The same config serving another registered model name."""
    raw = cfg.model_dump(mode="json")
    raw["registry"]["model_name"] = name
    return config_from_dict(raw, f"{cfg.name} serving {name}")


def write_config(cfg: Config, target: Path) -> Path:
    target.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return target


def copy_store(paths: Paths, scratch: Path) -> str:
    """A copy of the local tracking store (its artifacts stay where they are, read only): the
    bench registers its shadow model there, never in the user's store. Returns its URI."""
    source = paths.mlflow / "mlflow.db"
    if not source.is_file():
        raise PipelineError(f"{source}: no local tracking store; run `make pipeline` first")
    shutil.copy(source, scratch / "mlflow.db")
    return f"sqlite:///{scratch / 'mlflow.db'}"


def register_shadow_model(store: str, cfg: Config) -> str:
    """In the store's copy: the champion's model registered twice under a name of its own,
    v1 @champion and v2 @challenger (app_shadow's model). Returns the name."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(store, store)
    champion = client.get_model_version_by_alias(cfg.registry.model_name, cfg.registry.alias)
    name = f"{cfg.registry.model_name}-bench-shadow"
    client.create_registered_model(name)
    source = champion.source  # MLflow 3: models:/<id>, the logged model behind the version
    model_id = source.removeprefix("models:/") if source.startswith("models:/") else None
    # MLflow finds that logged model through the process's tracking URI, not the client's.
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(store)
    try:
        for alias in (cfg.registry.alias, CHALLENGER):
            mv = client.create_model_version(name, source, champion.run_id, model_id=model_id)
            client.set_registered_model_alias(name, alias, mv.version)
    finally:
        mlflow.set_tracking_uri(previous)
    return name


def server_command(name: str, bench: Bench, port: int) -> list[str]:
    bindir = Path(sys.executable).parent
    if name == "registry":
        return [
            str(bindir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--backend-store-uri", bench.store,
        ]  # fmt: skip
    if name == "mlflow":
        model = f"models:/{bench.cfg.registry.model_name}@{bench.cfg.registry.alias}"
        return [
            str(bindir / "mlflow"), "models", "serve", "-m", model, "--env-manager", "local",
            "-w", str(WORKERS), "-h", "127.0.0.1", "-p", str(port),
        ]  # fmt: skip
    return [str(bindir / "gunicorn"), "-c", "app/gunicorn_conf.py", "app.main:app"]


def server_env(name: str, bench: Bench, port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # mlflow runs `uvicorn`
        "MLFLOW_TRACKING_URI": bench.registry or bench.store,
        # MLflow 3's server otherwise starts 7 job-runner processes (GenAI jobs) that take
        # a core for a minute after start: noise in the very runs being measured.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    env.pop("FD_API_KEY", None)  # wrk sends no X-API-Key: every request would be a 401
    if name in APPS:
        env |= {
            "FD_CONFIG": str(bench.configs[name]),
            "FD_BIND": f"127.0.0.1:{port}",
            "FD_WORKERS": str(WORKERS),
            "FD_BENCH_ECHO": "1",  # /bench/echo answers 404 otherwise
            "FD_DATA_DIR": str(
                bench.scratch / f"data-{name}"
            ),  # the prediction log stays out of data/
            "FD_MODELS_DIR": str(bench.paths.models),
            # Each app its own metrics folder: gunicorn clears the folder it is given at start.
            "PROMETHEUS_MULTIPROC_DIR": str(bench.scratch / f"metrics-{name}"),
        }
    return env


def start_server(name: str, bench: Bench):
    """Start one server; returns (process, base URL, seconds until its first 200)."""
    port = free_port()
    env = server_env(name, bench, port)
    if name in APPS:
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(exist_ok=True)
    probe = {"mlflow": "/ping", "registry": "/health"}.get(name, "/ready")
    base = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    with open(bench.scratch / f"{name}.log", "ab") as errors:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            server_command(name, bench, port),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            start_new_session=True,  # its own process group: stopped as a whole
        )
    try:
        wait_http(base + probe, proc, timeout=180)
    except PipelineError as exc:
        stop_server(proc)
        raise PipelineError(f"{name}: {exc}; see {bench.scratch / name}.log") from None
    return proc, base, time.perf_counter() - start


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def worker_rss_mib(pid: int) -> float:
    """Mean RSS of the processes that serve requests: the leaves of the process tree, less
    multiprocessing's resource tracker (uvicorn --workers starts one)."""
    leaves = [
        p for p in tree(pid) if not p.children() and "resource_tracker" not in " ".join(p.cmdline())
    ]
    return statistics.mean(p.memory_info().rss for p in leaves) / 2**20


def cpu_seconds(procs: list[psutil.Process]) -> tuple[float, float]:
    """CPU seconds used by `procs`: in all, and by their main threads (a worker's event loop:
    HTTP, routing and, in this API, single flights; batches are scored in a worker thread)."""
    total = main = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
            main += sum(th.user_time + th.system_time for th in p.threads() if th.id == p.pid)
        except psutil.NoSuchProcess:
            pass
    return total, main


# ------------------------------------------------------------------ load
def run_wrk(url: str, bodies: Path, seconds: float, connections: int) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    out = subprocess.run(
        [*cmd, "-s", str(WRK_SCRIPT), url, "--", str(bodies)],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    match = re.search(r"^BENCH (.*)$", out, re.M)
    if not match:
        raise PipelineError(f"wrk printed no summary for {url}:\n{out}")
    return json.loads(match.group(1))


def wait_idle(busy_percent: float = 15, timeout: float = 15) -> None:
    """Until the machine's CPU is below `busy_percent` over half a second (at most `timeout`
    seconds): a server still working through its queue, or still starting up in the
    background, would slow the next run."""
    deadline = time.monotonic() + timeout
    while psutil.cpu_percent(interval=0.5) >= busy_percent:
        if time.monotonic() > deadline:
            log.warning("CPU still busy after %.0f s; measuring anyway", timeout)
            return


def children_cpu_seconds() -> float:
    """CPU seconds of this process's children that have ended: wrk's, around one wrk run
    (the servers are reaped only when stopped, after every run of their round)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured_run(url, bodies, seconds, connections, server_pid, rows) -> dict:
    """wrk against one server, with the load before it and the CPU the server, wrk and other
    processes used meanwhile."""
    ours = tree(server_pid)
    before = conditions.run_start()
    (ours0, main0), wrk0 = cpu_seconds(ours), children_cpu_seconds()
    result = run_wrk(url, bodies, seconds, connections)
    (ours1, main1), wrk1 = cpu_seconds(ours), children_cpu_seconds()
    server, wrk = ours1 - ours0, wrk1 - wrk0
    # Other processes: all but the server and wrk (the load generator is part of the bench).
    result |= conditions.run_conditions(before, server + wrk, result["seconds"])
    wall = result["seconds"] * psutil.cpu_count()
    result["server_cpu_share"] = round(server / wall, 3)
    result["wrk_cpu_share"] = round(wrk / wall, 3)
    result["server_cpu_ms_per_request"] = server * 1000 / max(result["requests"], 1)
    result["main_thread_cpu_share"] = round((main1 - main0) / max(server, 1e-9), 3)
    result["rps"] = result["requests"] / result["seconds"]
    result["rows_per_s"] = result["rps"] * rows
    return result


# ------------------------------------------------------------------ parity (goal 4)
def parity(cfg: Config, plain: Config, paths: Paths, batch_rows: int) -> dict:
    """Both serving paths (the C API and lightgbm.Booster, one flight at a time and as one
    batch) vs the logged pyfunc, on every test row."""
    import mlflow

    from src.serving.loader import load_champion
    from src.tracking.store import connect

    models = {"c_api": load_champion(cfg, paths), "lightgbm": load_champion(plain, paths)}
    loaded = models["c_api"]
    connect(paths)  # the pyfunc comes from the same registry, whichever source served above
    pyfunc = mlflow.pyfunc.load_model(f"models:/{loaded.name}/{loaded.version}")
    test = read_test_flights(paths)
    logged = pyfunc.predict(test)["delay_probability"].to_numpy()
    records = request_records(test)
    by_path = {k: path_parity(m.model, records, logged) for k, m in models.items()}
    estimators = {k: m.model.estimator for k, m in models.items()}
    batch, flight = breakdown(loaded.model.state, estimators, pyfunc, test, records, batch_rows)
    log.info("one %d-flight batch in-process, median ms: %s", batch_rows, batch)
    log.info("one flight in-process, median us: %s", flight)
    return {
        "rows": len(test),
        "model": f"{loaded.name} v{loaded.version} ({loaded.model.kind})",
        "max_abs_diff": max(
            max(p["max_abs_diff_one"], p["max_abs_diff_batch"]) for p in by_path.values()
        ),
        "paths": by_path,
        "fast_path_us_per_flight": by_path["c_api"]["us_per_flight"],
        "batch_in_process_ms": batch,
        "flight_in_process_us": flight,
    }


def path_parity(model, records: list[dict], logged: np.ndarray) -> dict:
    """One serving path vs the pyfunc: every row as one flight (the /predict path) and all
    rows as one batch of columns (the /predict/batch path)."""
    start = time.perf_counter()
    one = np.array([model.predict_one(r) for r in records])
    us = (time.perf_counter() - start) / len(records) * 1e6
    batch = model.predict_proba(as_columns(records))
    out = {
        "max_abs_diff_one": float(np.abs(one - logged).max()),
        "max_abs_diff_batch": float(np.abs(batch - logged).max()),
        "us_per_flight": round(us, 2),
    }
    log.info("parity %s: %d test rows: %s", type(model.estimator).__name__, len(records), out)
    return out


def median_time(step, repeat: int, unit: float) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * unit, 2)


def breakdown(state, estimators: dict, pyfunc, test, records, batch_rows) -> tuple[dict, dict]:
    """Where the time goes inside this API: one batch (ms) step by step, next to the pyfunc's
    own predict call (what `mlflow models serve` runs per request, without its HTTP and JSON
    parsing), and one flight (us). Each booster path is timed on the same features."""
    from app.schemas import BatchRequest
    from src.model.features import build_features

    frame, sample = test.head(batch_rows), records[:batch_rows]
    raw = json.dumps({"flights": sample})
    body = json.loads(raw)
    cols = BatchRequest.model_validate(body).as_columns()
    X = build_features(cols, state)
    one = as_columns(sample[:1])
    row = build_features(one, state)[0]
    batch = {
        "json_decode": lambda: json.loads(raw),  # FastAPI decodes with the json module
        "validate_and_columns": lambda: BatchRequest.model_validate(body).as_columns(),
        "features": lambda: build_features(cols, state),
        **{f"booster_{k}": (lambda e=e: e.predict(X)) for k, e in estimators.items()},
        "pyfunc_predict": lambda: pyfunc.predict(frame),
    }
    flight = {
        "features": lambda: build_features(one, state),
        **{f"booster_{k}": (lambda e=e: e.predict_one(row)) for k, e in estimators.items()},
    }
    gc.collect()
    gc.freeze()  # as an API worker does after loading its model (ModelService.swap)
    try:
        return (
            {k: median_time(step, 30, 1e3) for k, step in batch.items()},
            {k: median_time(step, 2000, 1e6) for k, step in flight.items()},
        )
    finally:
        gc.unfreeze()


# ------------------------------------------------------------------ the benchmark
def benchmark(cfg: Config, plain: Config, paths: Paths, args: argparse.Namespace) -> dict:
    if shutil.which("wrk") is None:
        raise PipelineError("wrk not found: install it (`make system-deps` or apt-get install wrk)")
    scratch = Path(tempfile.mkdtemp(prefix="fd-bench-"))
    try:
        store = copy_store(paths, scratch)
        shadow = serving_name(cfg, register_shadow_model(store, cfg))
        configs = {
            "app": Path(args.config).resolve(),
            "app_plain": write_config(plain, scratch / "plain.yml"),
            "app_shadow": write_config(shadow, scratch / "shadow.yml"),
        }
        bench = Bench(cfg, paths, args, scratch, configs, store)
        records = flight_records(paths, args.flights)
        files = write_bodies(scratch, records, args.batch_rows)
        runs = run(bench, files)
    except BaseException:
        # Kept for a look: a failed start names its server's log in there.
        log.error("scratch folder (server logs, bodies) kept: %s", scratch)
        raise
    shutil.rmtree(scratch, ignore_errors=True)
    result = summarize(runs, args)
    result["settings"]["fixed_flight"] = records[0]  # single_fixed's body
    return result


def run(bench: Bench, files: dict) -> list[dict]:
    """Every round against one tracking server: every server gets the champion from it, as
    in production."""
    registry_proc, bench.registry, _ = start_server("registry", bench)
    runs: list[dict] = []
    try:
        for rnd in range(1, bench.args.rounds + 1):
            runs += run_round(bench, rnd, files)
        return runs
    finally:
        stop_server(registry_proc)


def round_order(rnd: int) -> list[str]:
    """The servers in this round's order: each goes first in turn (a shared machine's
    slow spells then fall on each of them)."""
    k = (rnd - 1) % len(SERVERS)
    return [*SERVERS[k:], *SERVERS[:k]]


def run_round(bench: Bench, rnd: int, files: dict) -> list[dict]:
    """Start the servers, run every scenario, read the workers' RSS, stop them."""
    order, servers, runs = round_order(rnd), {}, []
    try:
        for name in order:
            wait_idle()  # the server started before may still be busy starting
            proc, base, seconds = start_server(name, bench)
            servers[name] = (proc, base)
            runs.append({"round": rnd, "server": name, "scenario": "startup", "seconds": seconds})
            log.info("round %d: %s ready in %.1f s", rnd, name, seconds)
            if name == "app_shadow":
                log.info("round %d: app_shadow scores with v%s too", rnd, shadow_loaded(base))
        for scenario in SCENARIOS:
            runs += run_scenario(bench, rnd, scenario, order, servers, files)
        counts = scores_counted(servers["app_shadow"][1])
        runs.append({"round": rnd, "server": "app_shadow", "scenario": "scored", **counts})
        for name, (proc, _) in servers.items():  # after the load: what a worker settles at
            runs.append(
                {"round": rnd, "server": name, "scenario": "rss", "mib": worker_rss_mib(proc.pid)}
            )
    finally:
        for proc, _ in servers.values():
            stop_server(proc)
    return runs


def shadow_loaded(base: str, in_a_row: int = 20, timeout: float = 60) -> str:
    """The challenger version app_shadow scores with: `in_a_row` /ready answers in a row
    (each from either worker) name one. A bench of app_shadow without it would be app's."""
    deadline, seen, shadow = time.monotonic() + timeout, 0, None
    while seen < in_a_row:
        if time.monotonic() > deadline:
            raise PipelineError(f"app_shadow: no challenger in every worker within {timeout:.0f} s")
        _, ready = http_json(f"{base}/ready")
        shadow = ready.get("shadow_version")
        seen = seen + 1 if shadow else 0
        if not shadow:
            time.sleep(0.1)  # a worker still loading it
    return shadow


def scores_counted(base: str) -> dict[str, float]:
    """Flights each role scored in app_shadow (both workers' fd_prediction_score counts):
    the challenger scored every flight if the two are equal."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    prefix = 'fd_prediction_score_count{{role="{}"'.format
    return {
        role: sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix(role)))
        for role in ("champion", "challenger")
    }


def run_scenario(bench, rnd, scenario, order, servers, files) -> list[dict]:
    """One scenario against each server in this round's order, the echo route last."""
    rows = 1 if scenario in ONE_FLIGHT else bench.args.batch_rows
    rank = lambda t: order.index(t[0]) if t[0] in order else len(order)  # noqa: E731
    runs = []
    for name, path in sorted(SCENARIOS[scenario], key=rank):
        proc, base = servers[SERVED_BY.get(name, name)]
        body = files[scenario, "mlflow" if name == "mlflow" else "app"]
        url, args = base + path, bench.args
        wait_idle()  # the previous run's server has drained its queue
        run_wrk(url, body, 2, args.connections)  # warm-up, not recorded
        result = measured_run(url, body, args.duration, args.connections, proc.pid, rows)
        runs.append({"round": rnd, "server": name, "scenario": scenario, **result})
        log.info(
            "round %d %-13s %-9s %8.0f req/s %9.0f rows/s p99 %7.1f ms errors %d"
            " load before %.2f, other CPU %.0f%%, wrk %.0f%%",
            rnd, scenario, name, result["rps"], result["rows_per_s"], result["p99_ms"],
            result["errors"] + result["timeouts"], result["load_before"],
            100 * result["other_cpu_share"], 100 * result["wrk_cpu_share"],
        )  # fmt: skip
    return runs


# ------------------------------------------------------------------ the result
def median_of(runs: list[dict], server: str, scenario: str, key: str) -> float:
    return statistics.median(
        r[key] for r in runs if (r["server"], r["scenario"]) == (server, scenario)
    )


def ratios_of(runs: list[dict]) -> dict[str, float]:
    """`app` and `app_plain` vs mlflow, `app_plain` and `app_shadow` vs `app`, and `app` vs
    its echo route."""
    m = lambda server, name: median_of(runs, server, *METRICS[name])  # noqa: E731
    ratios = {}
    for name in METRICS:
        ratios[f"{name}_vs_mlflow"] = m("app", name) / m("mlflow", name)
        ratios[f"plain_{name}_vs_mlflow"] = m("app_plain", name) / m("mlflow", name)
        ratios[f"plain_{name}_vs_app"] = m("app_plain", name) / m("app", name)
    for name in SHADOW_METRICS:
        ratios[f"shadow_{name}_vs_app"] = m("app_shadow", name) / m("app", name)
    ratios["single_rps_vs_echo"] = median_of(runs, "app", "single", "rps") / median_of(
        runs, "echo", "single", "rps"
    )
    return {k: round(v, 3) for k, v in ratios.items()}


def ratio_ranges(runs: list[dict]) -> dict[str, dict]:
    """Each ratio round by round (ratios_of over one round's runs) with its min and max: the
    spread to quote beside the median, as one round can fall on a slow spell of the machine.
    With an odd number of rounds the ratio of the medians lies within [min, max]."""
    rounds = sorted({r["round"] for r in runs})
    by_round = [ratios_of([r for r in runs if r["round"] == n]) for n in rounds]
    return {
        name: {
            "rounds": [ratios[name] for ratios in by_round],
            "min": min(ratios[name] for ratios in by_round),
            "max": max(ratios[name] for ratios in by_round),
        }
        for name in by_round[0]
    }


def shadow_of(runs: list[dict]) -> dict:
    """app_shadow vs app, round by round (each pair ran in the same round, minutes apart),
    and whether the challenger scored every flight the champion did."""
    rounds = sorted({r["round"] for r in runs})
    rps = {
        (r["server"], r["round"]): r["rps"]
        for r in runs
        if r["scenario"] == "single" and r["server"] in ("app", "app_shadow")
    }
    scored = [r for r in runs if r["scenario"] == "scored"]
    return {
        "single_rps_vs_app_by_round": [
            round(rps["app_shadow", n] / rps["app", n], 3) for n in rounds
        ],
        "scored": [{k: r[k] for k in ("round", "champion", "challenger")} for r in scored],
        "challenger_scored_every_flight": all(r["challenger"] == r["champion"] > 0 for r in scored),
    }


def meets(ratio: str, value: float) -> bool:
    op, limit = LIMITS[ratio]
    return value >= limit if op == ">=" else value <= limit


def medians_of(runs: list[dict]) -> dict:
    medians = {
        f"{server}_{scenario}": {k: median_of(runs, server, scenario, k) for k in MEDIAN_KEYS}
        for scenario, targets in SCENARIOS.items()
        for server, _ in targets
    }
    medians |= {f"{s}_startup_s": median_of(runs, s, "startup", "seconds") for s in SERVERS}
    medians |= {f"{s}_worker_rss_mib": median_of(runs, s, "rss", "mib") for s in SERVERS}
    return medians


def summarize(runs: list[dict], args: argparse.Namespace) -> dict:
    ratios = ratios_of(runs)
    # Any server's errors void the comparison, so all count, the plain variant's too.
    errors = {s: 0 for s in (*SERVERS, "echo")}
    for r in runs:
        errors[r["server"]] = errors.get(r["server"], 0) + r.get("errors", 0) + r.get("timeouts", 0)
    shadow = shadow_of(runs)
    goals = {g: all(meets(k, ratios[k]) for k in keys) for g, keys in GOALS.items()}
    goals["5_no_errors"] = sum(errors.values()) == 0
    # A shadow that scored nothing would cost nothing: its cost counts only if it ran.
    goals["6_shadow_cost"] = goals["6_shadow_cost"] and shadow["challenger_scored_every_flight"]
    return {
        "settings": {
            "config": str(args.config),
            "rounds": args.rounds,
            "duration_s": args.duration,
            "connections": args.connections,
            "batch_rows": args.batch_rows,
            "flights": args.flights,
            "workers": WORKERS,
            "cpus": psutil.cpu_count(),
            "fast_paths": {
                "app": "as configured",
                "app_plain": PLAIN_PATHS,
                "app_shadow": "as configured",
            },
        },
        "medians": medians_of(runs),
        "ratios": ratios,  # median over median, every round's runs
        "ratio_ranges": ratio_ranges(runs),
        "shadow": shadow,
        "limits": {k: f"{op} {limit}" for k, (op, limit) in LIMITS.items()},
        "goals": goals,
        "errors": errors,
        "runs": runs,
    }


def median_row(medians: dict, server: str, metric: str) -> float:
    scenario, key = METRICS[metric]
    if scenario == "startup":
        return medians[f"{server}_startup_s"]
    if scenario == "rss":
        return medians[f"{server}_worker_rss_mib"]
    return medians[f"{server}_{scenario}"][key]


def print_summary(result: dict) -> None:
    md, r = result["medians"], result["ratios"]
    print_table(result)
    print(
        f"  one flight, the same body in every request: app/mlflow {r['single_fixed_rps_vs_mlflow']:.3f}"
        f" (distinct flights {r['single_rps_vs_mlflow']:.3f}), plain/mlflow"
        f" {r['plain_single_fixed_rps_vs_mlflow']:.3f} ({r['plain_single_rps_vs_mlflow']:.3f})"
    )
    echo = md["echo_single"]["rps"]
    print(f"  echo route: {echo:.0f} req/s; app one flight / echo {r['single_rps_vs_echo']:.3f}")
    print_shadow(result)
    print(f"  errors and timeouts: {result['errors']}")
    if result.get("parity"):
        p = result["parity"]
        print(f"  parity on {p['rows']} test rows: max |path - pyfunc| {p['max_abs_diff']:.2e}")
    for goal, ok in result["goals"].items():
        print(f"  goal {goal:18s} {'SKIPPED' if ok is None else 'PASS' if ok else 'FAIL'}")
    print("\n".join(conditions.describe(result["conditions"])))


def print_table(result: dict) -> None:
    """Medians per server, and the ratios: of the medians, and app/mlflow's range over rounds."""
    md, r, ranges = result["medians"], result["ratios"], result["ratio_ranges"]
    print(
        f"\nmedians over {result['settings']['rounds']} interleaved rounds (plain: fast paths off):"
    )
    head = ("", "mlflow", "app", "app_plain", "app/mlflow", "rounds", "plain/mlflow", "plain/app")
    print("  {:20s} {:>10s} {:>10s} {:>10s} {:>11s} {:>13s} {:>12s} {:>10s}  goal".format(*head))
    for name in METRICS:
        values = [median_row(md, s, name) for s in COMPARED]
        ratios = [r[f"{name}_vs_mlflow"], r[f"plain_{name}_vs_mlflow"], r[f"plain_{name}_vs_app"]]
        spread = ranges[f"{name}_vs_mlflow"]
        spread = f"{spread['min']:.3g}-{spread['max']:.3g}"
        limit = " ".join(map(str, LIMITS.get(f"{name}_vs_mlflow", ())))
        print(
            "  {:20s} {:10.1f} {:10.1f} {:10.1f} {:11.3f} {:>13s} {:12.3f} {:10.3f}  {}".format(
                name, *values, ratios[0], spread, *ratios[1:], limit
            )
        )


def print_shadow(result: dict) -> None:
    """app (no challenger) and app_shadow (@challenger scored in the shadow), one flight."""
    md, r, shadow = result["medians"], result["ratios"], result["shadow"]
    app, with_shadow = md["app_single"], md["app_shadow_single"]
    print("  one flight, app vs app_shadow (@challenger scored in the shadow):")
    for key, label in (("rps", "req/s"), ("p99_ms", "p99 ms")):
        print(f"    {label:8s} {app[key]:10.1f} {with_shadow[key]:10.1f}")
    cpu = "server_cpu_ms_per_request"
    print(f"    CPU ms/request {app[cpu]:.3f} vs {with_shadow[cpu]:.3f}")
    print(
        f"    throughput ratio {r['shadow_single_rps_vs_app']:.3f} (rounds "
        f"{shadow['single_rps_vs_app_by_round']}); goal {' '.join(map(str, LIMITS['shadow_single_rps_vs_app']))}"
    )
    print(f"    flights scored by role, per round: {shadow['scored']}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.serving",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--rounds", type=int, default=3, help="a median needs 3 (one bad run)")
    p.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--batch-rows", type=int, default=1000)
    p.add_argument("--flights", type=int, default=8000, help="distinct test flights sent")
    p.add_argument("--skip-parity", action="store_true", help="skip goal 4 (quicker reruns)")
    p.add_argument("--out", type=Path, default=None, help="default: reports/bench/serving.json")
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    started = conditions.start()  # before the bench's own processes load the machine
    cfg, paths = load_config(args.config), get_paths()
    plain = without_fast_paths(cfg)
    check = None if args.skip_parity else parity(cfg, plain, paths, args.batch_rows)
    result = benchmark(cfg, plain, paths, args)
    result["parity"] = check
    # --skip-parity: null in the result file, and the exit code stays 1 (goal 4 not checked)
    result["goals"]["4_parity"] = (
        None if check is None else check["max_abs_diff"] <= PARITY_TOLERANCE
    )
    result["goals"] = dict(sorted(result["goals"].items()))  # numbered: printed in order
    result["conditions"] = conditions.finish(started, result["runs"])
    out = args.out or paths.bench
    write_json(out, result)
    print_summary(result)
    print(f"\nwrote {out}")
    return 0 if all(result["goals"].values()) else 1


def main(argv=None) -> int:
    return run_stage("bench", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
