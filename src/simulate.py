"""`make loop`: replay August-December 2013 month by month through the monitoring loop.

    python -m src.simulate [--config configs/default.yml] [--months 8 9 10 11 12]

Each month: the current champion serves the month's flights through the API (in-process app,
real routes), labels arrive at month end, a pending challenger meets the gate on that month,
the drift/performance monitor runs, and an alert trains a challenger on every labelled month
to date (registered as @challenger, gated next month). Everything lives in its own MLflow
store under reports/loop/, so the real registry is untouched. Writes reports/loop/report.md
with charts, and decisions.json (identical across runs).

The monitoring issue rewrites this module as a replay of the production cycle; until then it
is the one module under src/ that imports the app (see the import contracts).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from datetime import UTC, datetime

import mlflow
import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from matplotlib.figure import Figure
from mlflow import MlflowClient

from app.main import create_app  # the one exception to the layers (pyproject.toml)
from src.common.config import CONFIG_HELP, Config, load_config
from src.common.io import write_atomic, write_json
from src.common.logs import run_stage
from src.common.paths import SPLITS, Paths, get_paths
from src.common.render import render
from src.common.schema import TARGET
from src.data.processed import load_processed, months_label
from src.model.evaluate import binary_metrics
from src.model.features import request_columns, request_records
from src.model.fit import fit_model, score
from src.monitoring.drift import check_batch, feature_frame
from src.registry.export import publish_champion
from src.registry.promotion import gate
from src.registry.versions import CHALLENGER, CHAMPION, alias_version, create_version, move_alias
from src.serving.loader import load_champion
from src.serving.prediction_log import PredictionLogger
from src.serving.service import ModelService
from src.tracking.runs import log_run
from src.tracking.store import connect, experiment_id, lineage_tags

log = logging.getLogger("simulate")
POOLED_MONTHS = [10, 11, 12]


# ---------------------------------------------------------------- setup
def loop_config(cfg: Config) -> Config:
    """The loop's own registered model and experiment (a sandbox beside the real ones)."""
    registry = cfg.registry.model_copy(
        update={"model_name": cfg.loop.model_name, "model_card": None}
    )
    train = cfg.train.model_copy(update={"experiment": cfg.loop.model_name})
    return cfg.model_copy(update={"registry": registry, "train": train})


def with_months(cfg: Config, train: list[int], validation: list[int], test: list[int]) -> Config:
    months = {"train_months": train, "validation_months": validation, "test_months": test}
    return cfg.model_copy(update={"split": cfg.split.model_copy(update=months)})


def register_run(client, cfg: Config, paths: Paths, run_id: str, alias: str) -> str:
    version = create_version(client, run_id, cfg.registry.model_name)
    move_alias(client, paths, cfg.registry.model_name, alias, version.version, "register")
    return str(version.version)


def initial_champion(client, cfg: Config, paths: Paths, lpaths: Paths, splits: dict):
    """The config's LightGBM model, logged, registered as @champion and exported: the
    loop's first champion, and the frozen model it is compared with."""
    frozen = fit_model("lightgbm", splits["train"], splits["planes"], cfg)
    metrics, _ = score(frozen, splits)
    run_id = log_run(frozen, metrics, splits, lineage_tags(paths, cfg), cfg, "candidate")
    register_run(client, cfg, lpaths, run_id, CHAMPION)
    publish_champion(client, cfg, lpaths)
    return frozen


# ---------------------------------------------------------------- the loop's steps
def serve_month(cfg: Config, paths: Paths, lpaths: Paths, flights: pd.DataFrame, month: int):
    """Score the month through the API's batch route; returns (probabilities, version)."""
    logger = PredictionLogger(paths.loop_predictions(months_label([month])))

    def service(settings, config, _paths) -> ModelService:
        svc = ModelService(config.serve.threshold, logger)
        svc.swap(load_champion(config, lpaths, settings))
        return svc

    records = request_records(flights)
    probs, versions = [], set()
    with TestClient(create_app(service, cfg)) as client:
        for start in range(0, len(records), cfg.loop.batch_size):
            body = {"flights": records[start : start + cfg.loop.batch_size]}
            r = client.post("/predict/batch", json=body)
            r.raise_for_status()
            versions.add(r.json()["model_version"])
            probs += [p["delay_probability"] for p in r.json()["predictions"]]
    assert len(versions) == 1, versions  # one champion per month: promotions happen at month end
    return np.array(probs), versions.pop()


def train_challenger(client, data, planes, cfg: Config, paths: Paths, lpaths, month: int) -> str:
    """Challenger on every labelled month to date; validated later by the gate on month + 1."""
    ccfg = with_months(cfg, list(range(1, month + 1)), [month + 1], [month + 1])
    model = fit_model("lightgbm", data[data["month"] <= month], planes, ccfg)
    run_id = log_run(model, {}, {"train": data}, lineage_tags(paths, ccfg), ccfg, "challenger")
    return register_run(client, cfg, lpaths, run_id, CHALLENGER)


def monitor_month(cfg: Config, paths: Paths, lpaths: Paths, reference, flights, month: int):
    """The drift and performance check of the month against the current champion."""
    champion = load_champion(cfg, lpaths)
    metrics = champion.metadata["metrics"]
    snapshot, summary = check_batch(champion.model, reference, flights, cfg, metrics)
    html = paths.loop_drift_report(months_label([month]))
    write_atomic(html, lambda p: snapshot.save_html(str(p)))
    return summary


def replay_month(ctx: dict, month: int, last: bool) -> dict:
    """One month of the loop: serve, label, gate, monitor, maybe a new challenger."""
    cfg, paths, lpaths, client = ctx["cfg"], ctx["paths"], ctx["lpaths"], ctx["client"]
    flights = ctx["data"][ctx["data"]["month"] == month].reset_index(drop=True)
    served, serving_version = serve_month(cfg, paths, lpaths, flights, month)
    y = flights[TARGET].to_numpy()  # labels arrive at month end
    frozen = ctx["frozen"].predict_proba(request_columns(flights))
    for key, values in (("loop", served), ("frozen", frozen), ("y", y)):
        ctx["scores"][key].append(values)
    ctx["scores"]["month"].append(np.full(len(y), month))
    row = {"month": month, "serving_version": str(serving_version), "rows": len(flights)}
    row |= {"delay_rate": float(y.mean()), "loop_auc": binary_metrics(y, served)["roc_auc"]}
    row["frozen_auc"] = binary_metrics(y, frozen)["roc_auc"]
    summary = monitor_month(cfg, paths, lpaths, ctx["reference"], flights, month)
    keys = ("drift_share", "drifted_columns", "performance_alerts", "alert")
    row |= {key: summary[key] for key in keys}
    if alias_version(client, cfg.registry.model_name, CHALLENGER):
        row["gate"] = gate(client, cfg, lpaths, flights, months_label([month])).as_dict()
    if summary["retrain"] and not last:
        row["challenger_version"] = train_challenger(
            client, ctx["data"], ctx["planes"], cfg, paths, lpaths, month
        )
    return row


def run_loop(cfg: Config, paths: Paths, months: list[int]) -> dict:
    shutil.rmtree(paths.loop, ignore_errors=True)  # a fresh sandbox: repeatable runs
    lcfg = loop_config(cfg)
    lpaths = paths.loop_sandbox(datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ"))
    connect(lpaths)
    mlflow.set_experiment(experiment_id=experiment_id(lcfg.train.experiment, lpaths))
    splits = {name: load_processed(paths, name) for name in (*SPLITS, "planes")}
    log.info(
        "initial champion: train %s, validate %s",
        lcfg.split.train_months,
        lcfg.split.validation_months,
    )
    client = MlflowClient()
    frozen = initial_champion(client, lcfg, paths, lpaths, splits)
    ctx = {
        "cfg": lcfg,
        "paths": paths,
        "lpaths": lpaths,
        "client": client,
        "frozen": frozen,
        "data": pd.concat([splits[name] for name in SPLITS], ignore_index=True),
        "planes": splits["planes"],
        "reference": feature_frame(load_processed(paths, "reference"), frozen),
        "scores": {"loop": [], "frozen": [], "y": [], "month": []},
    }
    rows = []
    for month in months:
        start = time.perf_counter()
        rows.append(replay_month(ctx, month, last=month == max(months)))
        log_month(rows[-1], time.perf_counter() - start)
    return {"months": rows, "pooled_oct_dec": pooled_auc(ctx["scores"], POOLED_MONTHS)}


def log_month(row: dict, seconds: float) -> None:
    gate_result = row.get("gate", {}).get("promote", "-")
    log.info(
        "2013-%02d: served by v%s, AUC %.4f (frozen %.4f), drift share %.2f, alert %s, gate %s "
        "(%.0fs)",
        row["month"],
        row["serving_version"],
        row["loop_auc"],
        row["frozen_auc"],
        row["drift_share"],
        row["alert"],
        gate_result,
        seconds,
    )


def pooled_auc(scores: dict, months: list[int]) -> dict:
    """ROC AUC of the loop's served predictions and of the frozen model over `months`."""
    month = np.concatenate(scores["month"])
    mask = np.isin(month, months)
    if not mask.any():
        return {}
    y = np.concatenate(scores["y"])[mask]
    return {
        name: binary_metrics(y, np.concatenate(scores[name])[mask])["roc_auc"]
        for name in ("loop", "frozen")
    }


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
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    result = run_loop(cfg, paths, args.months or cfg.loop.months)
    write_json(paths.loop_file("decisions.json"), result)
    charts(result["months"], paths)
    report = render("loop_report.md.j2", rows=result["months"], pooled=result["pooled_oct_dec"])
    write_atomic(paths.loop_file("report.md"), lambda p: p.write_text(report))
    log.info("loop report written to %s", paths.loop_file("report.md"))
    return 0


def main(argv=None) -> int:
    return run_stage("simulate", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
