"""Serving benchmark: this API under gunicorn vs `mlflow models serve`, same champion.

    python -m src.bench [--config configs/default.yml] [--rounds 3] [--duration 10]

Both servers run on 127.0.0.1 with 2 workers and OMP_NUM_THREADS=1. wrk (closed loop,
16 connections) drives them interleaved, alternating which goes first each round, with
distinct real flights from the test split: one flight per request, then batches of 1000 as
records and as columns. Each run records the servers' CPU per request and the CPU that other
processes used meanwhile (these machines are shared). Writes reports/bench/serving.json,
prints the ratios and exits 1 if a goal from the README is missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import psutil

from src.common.config import Config, load_config
from src.common.errors import PipelineError
from src.common.io import write_json
from src.common.logs import run_stage
from src.common.paths import DEFAULT_CONFIG, ROOT, Paths, get_paths
from src.common.schema import REQUEST_FIELDS
from src.serve import free_port, stop_server, wait_http

log = logging.getLogger("bench")
WORKERS = 2
WRK_SCRIPT = """
local bodies, i = {}, 0
function init(args) for line in io.lines(args[1]) do bodies[#bodies + 1] = line end end
function request()
  i = i % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end
function done(s, lat, req)
  local e = s.errors
  io.write(string.format('BENCH {"requests": %d, "seconds": %.3f, "errors": %d, "timeouts": %d,'
    .. ' "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\\n', s.requests, s.duration / 1e6,
    e.connect + e.read + e.write + e.status, e.timeout, lat:percentile(50) / 1e3,
    lat:percentile(99) / 1e3, lat.max / 1e3))
end
"""
# scenario -> (server, path); single flights also hit the echo ceiling. Batches go as records
# (the goal), and as columns: this API's `columns` body against MLflow's `inputs`, the same
# one-list-per-field JSON.
SCENARIOS = {
    "single": [("mlflow", "/invocations"), ("app", "/predict"), ("echo", "/bench/echo")],
    "batch": [("mlflow", "/invocations"), ("app", "/predict/batch")],
    "batch_columns": [("mlflow", "/invocations"), ("app", "/predict/batch")],
}


# ------------------------------------------------------------------ request bodies
def flight_records(paths: Paths, n: int) -> list[dict]:
    test = pd.read_parquet(paths.processed / "test.parquet", columns=list(REQUEST_FIELDS))
    return as_records(test.sample(n=min(n, len(test)), random_state=0))


def as_records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready flight records: missing values as None."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def as_columns(records: list[dict]) -> dict[str, list]:
    return {f: [r[f] for r in records] for f in REQUEST_FIELDS}


def write_bodies(folder: Path, records: list[dict], batch_rows: int) -> dict[str, Path]:
    """One JSON body per line, per (scenario, server format)."""
    batches = [records[i : i + batch_rows] for i in range(0, len(records), batch_rows)]
    bodies = {
        ("single", "app"): [r for r in records],
        ("single", "mlflow"): [{"dataframe_records": [r]} for r in records],
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
def server_commands(cfg: Config, paths: Paths, port: int) -> dict[str, list[str]]:
    bindir = Path(sys.executable).parent
    model = f"models:/{cfg.registry.model_name}@{cfg.registry.alias}"
    return {
        "registry": [
            str(bindir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--backend-store-uri", paths.tracking_uri,
        ],  # fmt: skip
        "mlflow": [
            str(bindir / "mlflow"), "models", "serve", "-m", model, "--env-manager", "local",
            "-w", str(WORKERS), "-h", "127.0.0.1", "-p", str(port),
        ],  # fmt: skip
        "app": [str(bindir / "gunicorn"), "-c", "app/gunicorn_conf.py", "app.main:app"],
    }


def start_server(
    name: str, cfg: Config, config_path: str, paths: Paths, scratch: Path, registry: str = ""
):
    """Start one server; returns (process, base URL, seconds until its first 200)."""
    port = free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # mlflow runs `uvicorn`
        "MLFLOW_TRACKING_URI": registry or paths.tracking_uri,
        "FD_CONFIG": config_path,
        "FD_BIND": f"127.0.0.1:{port}",
        "FD_WORKERS": str(WORKERS),
        "FD_BENCH_ECHO": "1",
        "FD_DATA_DIR": str(scratch / "data"),  # the prediction log stays out of data/
        "FD_MODELS_DIR": str(paths.models),
        # MLflow 3's server otherwise starts 7 job-runner processes (GenAI jobs) that take
        # a core for a minute after start: noise in the very runs being measured.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    probe = {"mlflow": "/ping", "app": "/ready", "registry": "/health"}[name]
    base = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    with open(scratch / f"{name}.log", "ab") as errors:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            server_commands(cfg, paths, port)[name],
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
        raise PipelineError(f"{name}: {exc}; see {scratch / name}.log") from None
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
def run_wrk(url: str, bodies: Path, script: Path, seconds: float, connections: int) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s"]
    out = subprocess.run(
        [*cmd, str(script), url, "--", str(bodies)],
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
    seconds): a server still working through its queue would slow the next run."""
    deadline = time.monotonic() + timeout
    while psutil.cpu_percent(interval=0.5) >= busy_percent:
        if time.monotonic() > deadline:
            log.warning("CPU still busy after %.0f s; measuring anyway", timeout)
            return


def measured_run(url, bodies, script, seconds, connections, server_pid, rows) -> dict:
    """wrk against one server, with the CPU other processes used meanwhile."""
    ours = tree(server_pid)
    cpu0, (ours0, main0) = psutil.cpu_times(), cpu_seconds(ours)
    result = run_wrk(url, bodies, script, seconds, connections)
    cpu1, (ours1, main1) = psutil.cpu_times(), cpu_seconds(ours)
    busy = sum(
        getattr(cpu1, f) - getattr(cpu0, f) for f in ("user", "system", "nice", "irq", "softirq")
    )
    wall = result["seconds"] * psutil.cpu_count()
    result["server_cpu_share"] = round((ours1 - ours0) / wall, 3)
    # Everything else, wrk included: wrk's own share is the same for both servers.
    result["other_cpu_share"] = round(max(0.0, busy - (ours1 - ours0)) / wall, 3)
    result["server_cpu_ms_per_request"] = (ours1 - ours0) * 1000 / max(result["requests"], 1)
    result["main_thread_cpu_share"] = round((main1 - main0) / max(ours1 - ours0, 1e-9), 3)
    result["rps"] = result["requests"] / result["seconds"]
    result["rows_per_s"] = result["rps"] * rows
    return result


# ------------------------------------------------------------------ parity (goal 4)
def parity(cfg: Config, paths: Paths, batch_rows: int) -> dict:
    """The API's one-flight fast path vs the logged pyfunc, on every test row."""
    import mlflow

    from src.champion import load_champion

    loaded = load_champion(cfg, paths)
    test = pd.read_parquet(paths.processed / "test.parquet", columns=list(REQUEST_FIELDS))
    pyfunc = mlflow.pyfunc.load_model(f"models:/{loaded.name}/{loaded.version}")
    logged = pyfunc.predict(test)["delay_probability"].to_numpy()
    records = as_records(test)
    start = time.perf_counter()
    fast = np.array([loaded.model.predict_one(r) for r in records])
    per_row_us = (time.perf_counter() - start) / len(records) * 1e6
    diff = float(np.abs(fast - logged).max())
    log.info(
        "parity: %d test rows, max |fast - pyfunc| = %.2e (%.0f us per flight)",
        len(test),
        diff,
        per_row_us,
    )
    batch, flight = breakdown(loaded.model, pyfunc, test.head(batch_rows), records[:batch_rows])
    log.info("one %d-flight batch in-process, median ms: %s", batch_rows, batch)
    log.info("one flight in-process, median us: %s", flight)
    return {
        "rows": len(test),
        "max_abs_diff": diff,
        "fast_path_us_per_flight": per_row_us,
        "batch_in_process_ms": batch,
        "flight_in_process_us": flight,
    }


def breakdown(servable, pyfunc, frame: pd.DataFrame, records: list[dict]) -> tuple[dict, dict]:
    """Where the time goes inside this API: one batch (ms), next to the pyfunc's own predict
    call (what `mlflow models serve` runs per request, without its HTTP and JSON parsing),
    and one flight (us). `records` are `frame`'s rows."""
    from app.main import parse_batch
    from src.features import build_features

    raw = orjson.dumps({"flights": records})
    cols = parse_batch(raw)
    X = build_features(cols, servable.state)
    one = as_columns(records[:1])
    row = build_features(one, servable.state)[0]

    def median(step, repeat: int, unit: float) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return round(float(np.median(times)) * unit, 2)

    gc.collect()
    gc.freeze()  # as an API worker does after loading its model (app/service.py)
    try:
        batch = {
            "parse_and_validate": median(lambda: parse_batch(raw), 30, 1e3),
            "features": median(lambda: build_features(cols, servable.state), 30, 1e3),
            "booster": median(lambda: servable.estimator.predict(X), 30, 1e3),
            "pyfunc_predict": median(lambda: pyfunc.predict(frame), 30, 1e3),
        }
        flight = {
            "features": median(lambda: build_features(one, servable.state), 2000, 1e6),
            "booster": median(lambda: servable.estimator.predict_one(row), 2000, 1e6),
        }
        return batch, flight
    finally:
        gc.unfreeze()


# ------------------------------------------------------------------ the benchmark
def run(cfg: Config, config_path: str, paths: Paths, args: argparse.Namespace) -> dict:
    if shutil.which("wrk") is None:
        raise PipelineError("wrk not found: install it (`make system-deps` or apt-get install wrk)")
    scratch = Path(tempfile.mkdtemp(prefix="fd-bench-"))
    script = scratch / "bench.lua"
    script.write_text(WRK_SCRIPT)
    files = write_bodies(scratch, flight_records(paths, args.flights), args.batch_rows)
    runs: list[dict] = []
    # Both servers get the champion from one tracking server, as in production.
    registry_proc, registry, _ = start_server("registry", cfg, config_path, paths, scratch)
    try:
        for rnd in range(1, args.rounds + 1):
            order = ["mlflow", "app"] if rnd % 2 else ["app", "mlflow"]
            servers = {}
            try:
                for name in order:
                    proc, base, startup = start_server(
                        name, cfg, config_path, paths, scratch, registry
                    )
                    servers[name] = (proc, base)
                    runs.append(
                        {"round": rnd, "server": name, "scenario": "startup", "seconds": startup}
                    )
                    log.info("round %d: %s ready in %.1f s", rnd, name, startup)
                for scenario, targets in SCENARIOS.items():
                    rows = 1 if scenario == "single" else args.batch_rows
                    targets = sorted(
                        targets, key=lambda t: order.index(t[0]) if t[0] in order else 2
                    )
                    for name, path in targets:
                        proc, base = servers["app" if name == "echo" else name]
                        body = files[scenario, "mlflow" if name == "mlflow" else "app"]
                        url = base + path
                        wait_idle()  # the previous run's server has drained its queue
                        run_wrk(url, body, script, 2, args.connections)  # warm-up, not recorded
                        result = measured_run(
                            url, body, script, args.duration, args.connections, proc.pid, rows
                        )
                        runs.append({"round": rnd, "server": name, "scenario": scenario, **result})
                        log.info(
                            "round %d %-6s %-6s %8.0f req/s %9.0f rows/s p99 %7.1f ms errors %d other CPU %.0f%%",
                            rnd, scenario, name, result["rps"], result["rows_per_s"], result["p99_ms"],
                            result["errors"] + result["timeouts"], 100 * result["other_cpu_share"],
                        )  # fmt: skip
                for name, (proc, _) in servers.items():
                    runs.append(
                        {
                            "round": rnd,
                            "server": name,
                            "scenario": "rss",
                            "mib": worker_rss_mib(proc.pid),
                        }
                    )
            finally:
                for proc, _ in servers.values():
                    stop_server(proc)
    finally:
        stop_server(registry_proc)
        shutil.rmtree(scratch, ignore_errors=True)
    return summarize(runs, args)


def median_of(runs, server, scenario, key):
    return statistics.median(
        r[key] for r in runs if (r["server"], r["scenario"]) == (server, scenario)
    )


def summarize(runs: list[dict], args) -> dict:
    m = lambda *a: median_of(runs, *a)  # noqa: E731
    ratios = {
        "single_rps_vs_mlflow": m("app", "single", "rps") / m("mlflow", "single", "rps"),
        "single_rps_vs_echo": m("app", "single", "rps") / m("echo", "single", "rps"),
        "single_p99_vs_mlflow": m("app", "single", "p99_ms") / m("mlflow", "single", "p99_ms"),
        "batch_rows_vs_mlflow": m("app", "batch", "rows_per_s")
        / m("mlflow", "batch", "rows_per_s"),
        "batch_p99_vs_mlflow": m("app", "batch", "p99_ms") / m("mlflow", "batch", "p99_ms"),
        "batch_columns_rows_vs_mlflow": m("app", "batch_columns", "rows_per_s")
        / m("mlflow", "batch_columns", "rows_per_s"),
        "startup_vs_mlflow": m("app", "startup", "seconds") / m("mlflow", "startup", "seconds"),
        "rss_vs_mlflow": m("app", "rss", "mib") / m("mlflow", "rss", "mib"),
    }
    failures = sum(r.get("errors", 0) + r.get("timeouts", 0) for r in runs)
    goals = {
        "1_single": ratios["single_rps_vs_mlflow"] >= 10
        and ratios["single_rps_vs_echo"] >= 0.5
        and ratios["single_p99_vs_mlflow"] <= 0.2,
        "2_batch": ratios["batch_rows_vs_mlflow"] >= 3 and ratios["batch_p99_vs_mlflow"] <= 0.5,
        "3_startup_memory": ratios["startup_vs_mlflow"] <= 0.4 and ratios["rss_vs_mlflow"] <= 0.5,
        "5_no_errors": failures == 0,
    }
    medians = {
        f"{server}_{scenario}": {
            k: m(server, scenario, k)
            for k in (
                "rps",
                "rows_per_s",
                "p50_ms",
                "p99_ms",
                "server_cpu_ms_per_request",
                "main_thread_cpu_share",
                "other_cpu_share",
            )
        }
        for scenario, targets in SCENARIOS.items()
        for server, _ in targets
    }
    medians |= {f"{s}_startup_s": m(s, "startup", "seconds") for s in ("mlflow", "app")}
    medians |= {f"{s}_worker_rss_mib": m(s, "rss", "mib") for s in ("mlflow", "app")}
    return {
        "settings": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "connections": args.connections,
            "batch_rows": args.batch_rows,
            "workers": WORKERS,
            "cpus": psutil.cpu_count(),
        },
        "medians": medians,
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "goals": goals,
        "errors": failures,
        "runs": runs,
    }


def print_summary(result: dict) -> None:
    r, md = result["ratios"], result["medians"]
    print(f"\nmedians over {result['settings']['rounds']} interleaved rounds:")
    for key, v in md.items():
        print(
            f"  {key:24s} {v if isinstance(v, float) else json.dumps({k: round(x, 3) for k, x in v.items()})}"
        )
    print("ratios (app / mlflow models serve):")
    for key, v in r.items():
        print(f"  {key:24s} {v:8.3f}")
    for goal, ok in result["goals"].items():
        print(f"  goal {goal:18s} {'SKIPPED' if ok is None else 'PASS' if ok else 'FAIL'}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
    cfg, paths = load_config(args.config), get_paths()
    check = None if args.skip_parity else parity(cfg, paths, args.batch_rows)
    result = run(cfg, args.config, paths, args)
    result["parity"] = check
    # --skip-parity: null in the result file, and the exit code stays 1 (goal 4 not checked)
    result["goals"]["4_parity"] = None if check is None else check["max_abs_diff"] <= 1e-9
    out = args.out or paths.reports / "bench" / "serving.json"
    write_json(out, result)
    print_summary(result)
    print(f"\nwrote {out}")
    return 0 if all(result["goals"].values()) else 1


def main(argv=None) -> int:
    return run_stage("bench", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
