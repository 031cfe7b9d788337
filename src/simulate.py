"""`make loop`: the monitoring cycle replayed month by month, August to December 2013.

    python -m src.simulate [--config configs/default.yml] [--months 8 9 10 11 12]

A sandbox under reports/loop/ (its own MLflow store, models, prediction log and outcomes;
the real registry is untouched) starts from a champion trained on January-June, the frozen
model the loop is compared with. Then, for each month, with a simulated clock:
1. the month's flights are scored through a real API server on 127.0.0.1 (uvicorn, following
   the sandbox registry's @champion), with their flight numbers, so the log can be joined;
2. the month ends: its outcomes (the public flights table's departures) arrive in
   data/outcomes/;
3. `python -m src.cycle --as-of <month end>` runs in its own process, exactly as cron would;
4. the next month waits until the server serves whatever @champion the cycle left.
Writes reports/loop/{decisions.json,report.md,auc.png,drift.png}; decisions.json is identical
across runs. The report's sensitivity table replays the policy in memory under other
settings (src/monitoring/policy.py).
"""

from __future__ import annotations

import argparse
import calendar
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure
from mlflow import MlflowClient

from src.common.config import CONFIG_HELP, Config, load_config
from src.common.errors import PipelineError
from src.common.io import read_json, write_atomic, write_json
from src.common.logs import run_stage
from src.common.paths import ROOT, SPLITS, Paths, get_paths
from src.common.render import render
from src.common.schema import FLIGHTS, TARGET
from src.common.servers import free_port, http_json, stop_server, wait_http
from src.data.processed import load_processed, months_label
from src.data.validate import read_snapshot
from src.model.evaluate import binary_metrics
from src.model.features import request_columns, request_records
from src.model.fit import fit_and_calibrate, score
from src.monitoring.outcomes import OUTCOME_COLUMNS
from src.monitoring.policy import POOLED_MONTHS, pooled_auc, sensitivity
from src.registry.export import publish_champion
from src.registry.versions import CHAMPION, create_version, move_alias
from src.serving.prediction_log import read_log
from src.tracking.runs import log_run
from src.tracking.store import connect, experiment_id, lineage_tags

log = logging.getLogger("simulate")
CYCLE_TIMEOUT = 1800  # seconds: a full-data cycle takes about a minute


# ---------------------------------------------------------------- the sandbox
def loop_config(cfg: Config) -> Config:
    """The loop's own registered model and experiment, and a registry poll of half a second
    (the replay waits for the server to follow each promotion)."""
    name = cfg.loop.model_name
    registry = cfg.registry.model_copy(update={"model_name": name})
    serve = cfg.serve.model_copy(update={"reload_seconds": 0.5})
    train = cfg.train.model_copy(update={"experiment": name})
    return cfg.model_copy(update={"registry": registry, "train": train, "serve": serve})


def sandbox(paths: Paths) -> tuple[Paths, Path]:
    """Fresh sandbox folders (Paths.loop_sandbox: a repeatable run) and the loop config's
    file; the processed data linked, never copied."""
    shutil.rmtree(paths.loop, ignore_errors=True)
    lpaths = paths.loop_sandbox(datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ"))
    lpaths.data.mkdir(parents=True)
    (lpaths.data / "processed").symlink_to(paths.processed.resolve(), target_is_directory=True)
    return lpaths, lpaths.data.parent / "loop.yml"


def sandbox_env(lpaths: Paths, config_file: Path) -> dict[str, str]:
    """What the server and the cycle run with: the sandbox, whatever the user exported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FD_", "MLFLOW_"))}
    return env | {
        "FD_CONFIG": str(config_file),
        "FD_DATA_DIR": str(lpaths.data),
        "FD_MODELS_DIR": str(lpaths.models),
        "FD_REPORTS_DIR": str(lpaths.reports),
        "FD_MLFLOW_DIR": str(lpaths.mlflow),
        "MLFLOW_TRACKING_URI": lpaths.tracking_uri,
        "OMP_NUM_THREADS": "1",
    }


def initial_champion(cfg: Config, paths: Paths, lpaths: Paths, splits: dict):
    """The config's model on its train months (calibrated on its validation months, as
    src.train does), registered as the sandbox's @champion and
    exported: the loop's first champion, and the frozen model it is compared with."""
    connect(lpaths)
    mlflow.set_experiment(experiment_id=experiment_id(cfg.train.experiment, lpaths))
    frozen, calibration = fit_and_calibrate("lightgbm", splits, cfg)
    metrics = score(frozen, splits)[0] | calibration["metrics"]
    run_id = log_run(frozen, metrics, splits, lineage_tags(paths, cfg), cfg, "candidate")
    client, name = MlflowClient(), cfg.registry.model_name
    move_alias(
        client, lpaths, name, CHAMPION, create_version(client, run_id, name).version, "register"
    )
    publish_champion(client, cfg, lpaths)
    return frozen


# ---------------------------------------------------------------- one month
def serve_month(base: str, flights: pd.DataFrame, batch_size: int) -> tuple[np.ndarray, str]:
    """Score the month through the server's batch route, flight numbers included; returns
    (probabilities, the one version that served them)."""
    records = request_records(flights)
    for record, number in zip(records, flights["flight"].tolist(), strict=True):
        record["flight"] = int(number)
    probs, versions = [], set()
    for start in range(0, len(records), batch_size):
        status, body = http_json(
            f"{base}/predict/batch", {"flights": records[start : start + batch_size]}, timeout=60
        )
        if status != 200:
            raise PipelineError(f"{base}/predict/batch: {status} {str(body)[:300]}")
        versions.add(body["model_version"])
        probs += [p["delay_probability"] for p in body["predictions"]]
    if len(versions) != 1:  # promotions happen between months, never during one
        raise PipelineError(f"one month served by several versions: {sorted(versions)}")
    return np.array(probs), versions.pop()


def wait_logged(lpaths: Paths, month: int, rows: int, timeout: float = 60) -> None:
    """Until the server's prediction log holds the month's rows (it flushes every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(lpaths.predictions.glob("predictions-*.jsonl")):
            logged, _ = read_log(lpaths.predictions)
            if int((logged["month"] == month).sum()) >= rows:
                return
        time.sleep(0.2)
    raise PipelineError(
        f"{lpaths.predictions}: month {month}'s {rows} predictions not logged in {timeout:.0f} s"
    )


def publish_outcomes(raw_flights: pd.DataFrame, lpaths: Paths, month: int) -> None:
    """The month's departures as observed (dep_delay; empty = cancelled) arrive."""
    observed = raw_flights.loc[raw_flights["month"] == month, list(OUTCOME_COLUMNS)]
    path = lpaths.outcomes / f"outcomes-{months_label([month])}.csv"
    write_atomic(path, lambda p: observed.to_csv(p, index=False))


def run_cycle(env: dict, lpaths: Paths, as_of: str) -> dict:
    """`python -m src.cycle --as-of` in its own process; its summary."""
    cmd = [sys.executable, "-m", "src.cycle", "--as-of", as_of]
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=CYCLE_TIMEOUT
    )
    if done.returncode not in (0, 1):
        raise PipelineError(f"cycle {as_of} exited {done.returncode}:\n{done.stderr[-2000:]}")
    log.info("%s", done.stdout.strip())
    return read_json(lpaths.cycle_file(as_of, "summary.json"))


def wait_serving(base: str, version: str, timeout: float = 60) -> None:
    """Until the server answers with `version` (it polls the registry every 0.5 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = http_json(f"{base}/model")
        if status == 200 and body["version"] == version:
            return
        time.sleep(0.2)
    raise PipelineError(f"{base}: still not serving v{version} after {timeout:.0f} s")


def month_row(month: int, served, version: str, frozen, y, summary: dict) -> dict:
    """The month in decisions.json: how it was served, then what its cycle decided."""
    gate, challenger = summary["gate"] or {}, summary["challenger"] or {}
    live = [f for f in summary["live"]["figures"] if f["role"] == "champion"]
    return {
        "month": month,
        "serving_version": version,
        "rows": len(y),
        "delay_rate": float(y.mean()),
        "loop_auc": binary_metrics(y, served)["roc_auc"],
        "frozen_auc": binary_metrics(y, frozen)["roc_auc"],
        "live_counts": summary["live"]["counts"],
        "live_auc": live[0]["roc_auc"] if live else None,
        "drift_share": summary["drift"]["drift_share"],
        "drifted_columns": summary["drift"]["drifted_columns"],
        "alerts": summary["alerts"],
        "decision": summary["decision"],
        "challenger_trees": challenger.get("trees"),
        "gate": {k: gate[k] for k in ("auc_gain", "ci_low", "ci_high", "reason")} if gate else None,
        "champion_after": summary["champion_version"],
    }


# ---------------------------------------------------------------- the replay
def run_loop(cfg: Config, paths: Paths, months: list[int], splits: dict) -> dict:
    lcfg = loop_config(cfg)
    lpaths, config_file = sandbox(paths)
    write_atomic(config_file, lambda p: p.write_text(yaml.safe_dump(lcfg.model_dump())))
    env = sandbox_env(lpaths, config_file)
    data = pd.concat([splits[name] for name in SPLITS], ignore_index=True)
    raw_flights = read_snapshot(paths, cfg.snapshot)[FLIGHTS.name]
    log.info(
        "initial champion: train %s, validate %s",
        lcfg.split.train_months,
        lcfg.split.validation_months,
    )
    frozen = initial_champion(lcfg, paths, lpaths, splits)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    rows = []
    scores: dict[str, list[np.ndarray]] = {"loop": [], "frozen": [], "y": [], "month": []}
    try:
        wait_http(f"{base}/ready", server)
        for month in months:
            started = time.perf_counter()
            flights = data[data["month"] == month].reset_index(drop=True)
            served, version = serve_month(base, flights, lcfg.loop.batch_size)
            wait_logged(lpaths, month, len(flights))
            publish_outcomes(raw_flights, lpaths, month)
            as_of = date(2013, month, calendar.monthrange(2013, month)[1]).isoformat()
            summary = run_cycle(env, lpaths, as_of)
            wait_serving(base, summary["champion_version"])
            y = flights[TARGET].to_numpy()
            frozen_scores = frozen.predict_proba(request_columns(flights))
            rows.append(month_row(month, served, version, frozen_scores, y, summary))
            for key, values in zip(
                scores, (served, frozen_scores, y, np.full(len(y), month)), strict=True
            ):
                scores[key].append(values)
            log_month(rows[-1], time.perf_counter() - started)
    finally:
        stop_server(server, signal.SIGINT, timeout=20)
    pooled = pooled_auc(*(np.concatenate(scores[k]) for k in ("y", "month", "loop", "frozen")))
    return {"months": rows, "pooled_oct_dec": pooled}


def shortfalls(result: dict, cfg: Config) -> list[str]:
    """Where the loop fails to pay (config `loop:`): empty when it pays."""
    failures = []
    pooled = result["pooled_oct_dec"]
    if pooled and pooled["loop"] - pooled["frozen"] < cfg.loop.min_pooled_gain:
        gain = pooled["loop"] - pooled["frozen"]
        failures.append(f"pooled Oct-Dec gain {gain:+.4f} < {cfg.loop.min_pooled_gain:+.4f}")
    for row in result["months"]:
        if row["loop_auc"] - row["frozen_auc"] < -cfg.loop.max_month_loss:
            gap = row["loop_auc"] - row["frozen_auc"]
            failures.append(f"2013-{row['month']:02d}: {gap:+.4f} vs frozen")
    return failures


def log_month(row: dict, seconds: float) -> None:
    log.info(
        "2013-%02d: served by v%s, AUC %.4f (frozen %.4f); cycle: %s, alerts %s, @champion v%s (%.0f s)",
        row["month"],
        row["serving_version"],
        row["loop_auc"],
        row["frozen_auc"],
        row["decision"],
        row["alerts"] or "none",
        row["champion_after"],
        seconds,
    )


# ---------------------------------------------------------------- report
def charts(rows: list[dict], paths: Paths) -> None:
    months = [r["month"] for r in rows]
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.plot(months, [r["frozen_auc"] for r in rows], "o--", label="frozen Jan–Jun model")
    ax.plot(months, [r["loop_auc"] for r in rows], "o-", label="loop champion (as served)")
    ax.set(xlabel="Month of 2013", ylabel="ROC AUC", title="Monthly AUC", xticks=months)
    ax.legend()
    fig.tight_layout()
    write_atomic(paths.loop_file("auc.png"), lambda p: fig.savefig(p, format="png", dpi=110))
    fig = Figure(figsize=(6, 3))
    ax = fig.subplots()
    ax.bar(months, [r["drift_share"] for r in rows], color="tab:orange")
    ax.axhline(0.5, color="k", ls=":", label="alert at drift share 0.5")
    ax.set(xlabel="Month of 2013", ylabel="Share of columns drifted", xticks=months, ylim=(0, 1))
    ax.set_title("Fleet and airport-mix drift vs Jan–Jun")
    ax.legend()
    fig.tight_layout()
    write_atomic(paths.loop_file("drift.png"), lambda p: fig.savefig(p, format="png", dpi=110))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.simulate", description=__doc__.split("\n")[0])
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--months", type=int, nargs="+", help="months to replay (default: config)")
    p.add_argument("--no-sensitivity", action="store_true", help="skip the sensitivity table")
    p.add_argument("--strict", action="store_true", help="exit 1 unless the loop pays (CI)")
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    months = args.months or cfg.loop.months
    splits = {name: load_processed(paths, name) for name in (*SPLITS, "planes")}
    result = run_loop(cfg, paths, months, splits)
    table = None
    if not args.no_sensitivity:
        data = pd.concat([splits[name] for name in SPLITS], ignore_index=True)
        table = sensitivity(cfg, data, splits["planes"], months)
    write_json(paths.loop_file("decisions.json"), result)
    if table is not None:
        write_json(paths.loop_file("sensitivity.json"), table)
    charts(result["months"], paths)
    report = render(
        "loop_report.md.j2",
        rows=result["months"],
        pooled=result["pooled_oct_dec"],
        sensitivity=table,
        shortfalls=shortfalls(result, cfg),
        loop=cfg.loop,
        pooled_label=months_label(POOLED_MONTHS),
    )
    write_atomic(paths.loop_file("report.md"), lambda p: p.write_text(report))
    log.info("loop report written to %s", paths.loop_file("report.md"))
    failures = shortfalls(result, cfg)
    for failure in failures:
        log.warning("the loop does not pay: %s", failure)
    return 1 if failures and args.strict else 0


def main(argv=None) -> int:
    return run_stage("simulate", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
