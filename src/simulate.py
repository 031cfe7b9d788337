"""`make loop`: the monitoring cycle replayed month by month, August to December 2013.

    python -m src.simulate [--config configs/default.yml] [--months 8 9 10 11 12]

In a sandbox under reports/loop/ (its own MLflow store: the real registry is untouched), a
champion trained on January-June (the frozen model) serves each month's flights through a
real API server on 127.0.0.1; the month's outcomes arrive; `python -m src.cycle --as-of
<month end>` runs in its own process, as cron would; the next month waits until the server
follows the cycle's @champion. Writes reports/loop/{decisions.json,report.md,*.png} and the
sensitivity table, sensitivity.json: the cycle's own policy step (src/monitoring/policy.py)
replayed in memory, one setting changed at a time (docs/monitoring.md).
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
from functools import partial

import mlflow
import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure
from mlflow import MlflowClient

from src.common.config import CONFIG_HELP, Config, config_from_dict, load_config
from src.common.errors import PipelineError
from src.common.io import read_json, write_atomic, write_json
from src.common.logs import run_stage
from src.common.paths import ROOT, SPLITS, Paths, get_paths
from src.common.render import render
from src.common.schema import FLIGHTS, TARGET
from src.common.servers import free_port, http_json, stop_server, wait_http
from src.data.prepare import at_lead
from src.data.processed import load_processed, months_label
from src.data.validate import read_snapshot
from src.model.evaluate import binary_metrics, expected_calibration_error
from src.model.features import request_columns, request_records
from src.model.fit import Retrained, fit_and_calibrate, retrain, score
from src.monitoring.outcomes import OUTCOME_COLUMNS
from src.monitoring.policy import policy_step
from src.registry.export import publish_champion
from src.registry.versions import CHAMPION, create_version, move_alias
from src.tracking.runs import log_run
from src.tracking.store import connect, experiment_id, lineage_tags

log = logging.getLogger("simulate")
CYCLE_TIMEOUT = 1800  # seconds: a cycle running longer has hung
FOLLOW_TIMEOUT = 60  # seconds for the server to serve the cycle's @champion
POOLED_MONTHS = [10, 11, 12]  # the acceptance window: October-December 2013
# The sensitivity table: one setting at a time around the config's value.
VARIATIONS = (
    ("cycle", "early_stopping_patience", (10, 20, 30, 50, 100)),
    ("gate", "alpha", (0.01, 0.05, 0.2)),
    ("gate", "max_log_loss_increase", (0.0, 0.002, 0.01)),
    ("gate", "min_auc_gain", (0.0, -0.002, -0.005)),
)


# ---------------------------------------------------------------- the real replay
def sandbox(cfg: Config, paths: Paths) -> tuple[Config, Paths, dict[str, str]]:
    """Fresh sandbox folders (the processed data linked, never copied); the loop's config,
    also in a file: its own registered model and experiment, and a registry poll of half a
    second (the replay waits for the server to follow each promotion); the environment the
    server and the cycle run with there, whatever the user exported."""
    raw = cfg.model_dump()
    raw["registry"]["model_name"] = raw["train"]["experiment"] = cfg.loop.model_name
    raw["serve"]["reload_seconds"] = 0.5
    shutil.rmtree(paths.loop, ignore_errors=True)
    lpaths = paths.loop_sandbox(datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ"))
    lpaths.data.mkdir(parents=True)
    (lpaths.data / "processed").symlink_to(paths.processed.resolve(), target_is_directory=True)
    config_file = lpaths.data.parent / "loop.yml"
    write_atomic(config_file, lambda p: p.write_text(yaml.safe_dump(raw)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FD_", "MLFLOW_"))}
    env |= {f"FD_{k.upper()}_DIR": str(getattr(lpaths, k)) for k in ("data", "models", "reports")}
    env |= {"FD_MLFLOW_DIR": str(lpaths.mlflow), "MLFLOW_TRACKING_URI": lpaths.tracking_uri}
    env |= {"FD_CONFIG": str(config_file), "OMP_NUM_THREADS": "1"}
    return config_from_dict(raw, str(config_file)), lpaths, env


def initial_champion(cfg: Config, paths: Paths, lpaths: Paths, splits: dict):
    """src.train's recipe on the config's train and validation months, registered as the
    sandbox's @champion and exported, as src.register does: the loop's first champion, and
    the frozen model it is compared with."""
    connect(lpaths)
    mlflow.set_experiment(experiment_id=experiment_id(cfg.train.experiment, lpaths))
    frozen, calibration = fit_and_calibrate("lightgbm", splits, cfg)
    metrics = score(frozen, splits, cfg.split.served_lead_hours)[0] | calibration["metrics"]
    run_id = log_run(frozen, metrics, splits, lineage_tags(paths, cfg), cfg, "candidate")
    client, name = MlflowClient(), cfg.registry.model_name
    version = create_version(client, run_id, name).version
    move_alias(client, lpaths, name, CHAMPION, version, "register")
    publish_champion(client, cfg, lpaths)
    return frozen


def serve_month(base: str, flights: pd.DataFrame, batch_size: int) -> tuple[np.ndarray, str]:
    """Score the month through the server's batch route, flight numbers included; returns
    (probabilities, the one version that served them)."""
    records = request_records(flights)
    for record, number in zip(records, flights["flight"].tolist(), strict=True):
        record["flight"] = int(number)
    probs, versions = [], set()
    for start in range(0, len(records), batch_size):
        batch = {"flights": records[start : start + batch_size]}
        status, body = http_json(f"{base}/predict/batch", batch, timeout=60)
        if status != 200:
            raise PipelineError(f"{base}/predict/batch: {status} {str(body)[:300]}")
        versions.add(body["model_version"])
        probs += [p["delay_probability"] for p in body["predictions"]]
    if len(versions) != 1:  # promotions happen between months, never during one
        raise PipelineError(f"one month served by several versions: {sorted(versions)}")
    return np.array(probs), versions.pop()


def replay_month(base: str, lpaths: Paths, env: dict, flights, raw_flights, batch_size: int):
    """Serve the month; its outcomes arrive; `python -m src.cycle --as-of <month end>` runs
    in its own process, as cron runs it; the server follows the cycle's @champion. Returns
    (the served scores, the version that served them, the cycle's summary)."""
    month = int(flights["month"].iloc[0])
    # The server logs each prediction before it answers: the log is complete for the cycle.
    served, version = serve_month(base, flights, batch_size)
    observed = raw_flights.loc[raw_flights["month"] == month, list(OUTCOME_COLUMNS)]
    outcomes = lpaths.outcomes / f"outcomes-{months_label([month])}.csv"
    write_atomic(outcomes, lambda p: observed.to_csv(p, index=False))
    as_of = date(2013, month, calendar.monthrange(2013, month)[1]).isoformat()
    cmd = [sys.executable, "-m", "src.cycle", "--as-of", as_of]
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=CYCLE_TIMEOUT
    )
    if done.returncode not in (0, 1):
        raise PipelineError(f"cycle {as_of} exited {done.returncode}:\n{done.stderr[-2000:]}")
    log.info("%s", done.stdout.strip())
    summary = read_json(lpaths.cycle_file(as_of, "summary.json"))
    champion, deadline = summary["champion_version"], time.monotonic() + FOLLOW_TIMEOUT
    while http_json(f"{base}/model")[1].get("version") != champion:
        if time.monotonic() > deadline:
            raise PipelineError(f"{base}: still not serving v{champion} after {FOLLOW_TIMEOUT} s")
        time.sleep(0.2)
    return served, version, summary


def month_row(month: int, version: str, y, served, frozen, summary: dict) -> dict:
    """The month in decisions.json: how it was served, then what its cycle decided."""
    gate, drift = summary["gate"], summary["drift"]
    live = [f["roc_auc"] for f in summary["live"]["figures"] if f["role"] == "champion"]
    return {
        "month": month,
        "serving_version": version,
        "rows": len(y),
        "delay_rate": float(y.mean()),
        "loop_auc": auc(y, served),
        "frozen_auc": auc(y, frozen),
        "loop_ece": expected_calibration_error(y, served),  # the gate's and the monitor's ECE
        "frozen_ece": expected_calibration_error(y, frozen),
        "live_counts": summary["live"]["counts"],
        "live_auc": live[0] if live else None,
        "drift_share": drift["drift_share"],
        "drifted_columns": drift["drifted_columns"],
        "alerts": summary["alerts"],
        "decision": summary["decision"],
        "challenger_trees": (summary["challenger"] or {}).get("trees"),
        "gate": {k: gate[k] for k in ("auc_gain", "ci_low", "ci_high", "reason")} if gate else None,
        "champion_after": summary["champion_version"],
    }


def run_loop(cfg: Config, paths: Paths, months: list[int], splits: dict, data: pd.DataFrame):
    """The real replay; returns (decisions.json, the frozen model)."""
    lcfg, lpaths, env = sandbox(cfg, paths)
    raw_flights = read_snapshot(paths, cfg.snapshot)[FLIGHTS.name]
    split = cfg.split
    log.info("initial champion: train %s, validate %s", split.train_months, split.validation_months)
    frozen = initial_champion(lcfg, paths, lpaths, splits)
    base = f"http://127.0.0.1:{(port := free_port())}"
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--log-level", "warning"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    rows, y, served, frozen_scores = [], {}, {}, {}
    try:
        wait_http(f"{base}/ready", server)
        for month in months:
            flights = at_lead(data[data["month"] == month], lcfg.split.served_lead_hours)
            y[month] = flights[TARGET].to_numpy()
            frozen_scores[month] = frozen.predict_proba(request_columns(flights))
            served[month], version, summary = replay_month(
                base, lpaths, env, flights, raw_flights, lcfg.loop.batch_size
            )
            row = month_row(month, version, y[month], served[month], frozen_scores[month], summary)
            log.info("2013-%02d served by v%s: AUC %.4f", month, version, row["loop_auc"])
            rows.append(row)
    finally:
        stop_server(server, signal.SIGINT, timeout=20)
    return {"months": rows, "pooled_oct_dec": pooled_auc(y, served, frozen_scores)}, frozen


# ---------------------------------------------------------------- the sensitivity table
def sensitivity(cfg: Config, data: pd.DataFrame, planes, months: list[int], model) -> list[dict]:
    """The cycle's policy step replayed in memory under each VARIATION: each month the
    champion scores it, then `policy_step` retrains on every labelled month and gates; a
    promoted refit serves the next month. Fits depend only on (patience, month): the settings
    that differ only in the gate share them."""
    fits: dict[tuple[int, int], Retrained] = {}

    def fit(labelled, planes, cfg, patience, cap) -> Retrained:
        key = (patience, int(labelled["month"].max()))
        if key not in fits:
            fits[key] = retrain(labelled, planes, cfg, patience, cap)
        return fits[key]

    served_rows = at_lead(data, cfg.split.served_lead_hours)  # policy_step scores these
    month_rows = {m: served_rows[served_rows["month"] == m] for m in months}
    y = {m: rows[TARGET].to_numpy() for m, rows in month_rows.items()}
    frozen = {m: model.predict_proba(request_columns(rows)) for m, rows in month_rows.items()}
    rows = []
    for section, field, value in ((s, f, v) for s, f, values in VARIATIONS for v in values):
        part = getattr(cfg, section).model_copy(update={field: value})
        varied, champion, served, promotions = cfg.model_copy(update={section: part}), model, {}, 0
        for m in y:
            step = policy_step(data[data["month"] <= m], planes, champion, varied, fit)
            served[m] = step.champion_scores
            if step.gate.promote:
                champion, promotions = step.retrained.model, promotions + 1
        chosen = getattr(getattr(cfg, section), field) == value
        rows.append({"setting": f"{section}.{field}", "value": value, "chosen": chosen})
        rows[-1]["pooled"] = pooled_auc(y, served, frozen)
        rows[-1]["worst_month_gap"] = min(auc(y[m], served[m]) - auc(y[m], frozen[m]) for m in y)
        rows[-1]["promotions"] = promotions
        log.info("sensitivity %s.%s=%s: %s", section, field, value, rows[-1])
    return rows


def auc(y: np.ndarray, scores: np.ndarray) -> float:
    return binary_metrics(y, scores)["roc_auc"]


def pooled_auc(y: dict, loop: dict, frozen: dict) -> dict:
    """ROC AUC of the loop's and the frozen model's scores (each: month -> scores) over the
    POOLED_MONTHS replayed; empty when none was, or they hold one class."""
    months = [m for m in y if m in POOLED_MONTHS]
    labels = np.concatenate([y[m] for m in months]) if months else np.array([])
    if len(np.unique(labels)) < 2:
        return {}
    pooled = {"loop": loop, "frozen": frozen}
    return {k: auc(labels, np.concatenate([d[m] for m in months])) for k, d in pooled.items()}


# ---------------------------------------------------------------- report
def shortfalls(result: dict, cfg: Config) -> list[str]:
    """Where the loop fails to pay (config `loop:`): empty when it pays."""
    pooled, bar = result["pooled_oct_dec"], cfg.loop
    gaps = [(f"2013-{r['month']:02d}", r["loop_auc"] - r["frozen_auc"]) for r in result["months"]]
    failures = [f"{m}: {gap:+.4f} vs frozen" for m, gap in gaps if gap < -bar.max_month_loss]
    if pooled and (gain := pooled["loop"] - pooled["frozen"]) < bar.min_pooled_gain:
        failures.insert(0, f"pooled Oct-Dec gain {gain:+.4f} < {bar.min_pooled_gain:+.4f}")
    return failures


def charts(rows: list[dict], paths: Paths) -> None:
    """auc.png: the monthly AUC of the loop and the frozen model; drift.png: drift share."""
    months = [r["month"] for r in rows]
    auc_chart, drift_chart = Figure(figsize=(6, 3.5)), Figure(figsize=(6, 3))
    ax = auc_chart.subplots()
    ax.plot(months, [r["frozen_auc"] for r in rows], "o--", label="frozen Jan–Jun model")
    ax.plot(months, [r["loop_auc"] for r in rows], "o-", label="loop champion (as served)")
    ax.set(xlabel="Month of 2013", ylabel="ROC AUC", title="Monthly AUC", xticks=months)
    ax = drift_chart.subplots()
    ax.bar(months, [r["drift_share"] for r in rows], color="tab:orange")
    ax.axhline(0.5, color="k", ls=":", label="alert at drift share 0.5")
    ax.set(xlabel="Month of 2013", ylabel="Share of columns drifted", xticks=months, ylim=(0, 1))
    ax.set_title("Fleet and airport-mix drift vs Jan–Jun")
    for name, fig in (("auc.png", auc_chart), ("drift.png", drift_chart)):
        fig.axes[0].legend()
        fig.tight_layout()
        write_atomic(paths.loop_file(name), partial(fig.savefig, format="png", dpi=110))


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
    splits = {name: load_processed(paths, name) for name in (*SPLITS, "planes")}
    data = pd.concat([splits[name] for name in SPLITS], ignore_index=True)
    months = args.months or cfg.loop.months
    result, frozen = run_loop(cfg, paths, months, splits, data)
    write_json(paths.loop_file("decisions.json"), result)
    table = None
    if args.no_sensitivity or cfg.cycle.retrain != "always":  # the table replays no alerts
        log.info("no sensitivity table (--no-sensitivity, or cycle.retrain is not 'always')")
    else:
        table = sensitivity(cfg, data, splits["planes"], months, frozen)
        write_json(paths.loop_file("sensitivity.json"), table)
    charts(result["months"], paths)
    failures = shortfalls(result, cfg)
    report = render(
        "loop_report.md.j2",
        rows=result["months"],
        pooled=result["pooled_oct_dec"],
        sensitivity=table,
        shortfalls=failures,
        loop=cfg.loop,
        pooled_label=months_label(POOLED_MONTHS),
    )
    write_atomic(paths.loop_file("report.md"), lambda p: p.write_text(report))
    log.info("loop report written to %s", paths.loop_file("report.md"))
    for failure in failures:
        log.warning("the loop does not pay: %s", failure)
    return 1 if failures and args.strict else 0


def main(argv=None) -> int:
    return run_stage("simulate", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
