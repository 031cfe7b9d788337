"""`make loop`: replay August-December 2013 month by month through the monitoring loop.

    python -m src.simulate [--config configs/default.yml] [--months 8 9 10 11 12]

Each month: the current champion serves the month's flights through the API (in-process app,
real routes), labels arrive at month end, a pending challenger meets the gate on that month,
the drift/performance monitor runs, and an alert trains a challenger on every labelled month
to date (registered as @challenger, gated next month). Everything lives in its own MLflow
store under reports/loop/, so the real registry is untouched. Writes reports/loop/report.md
with charts, and decisions.json (identical across runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import time
from datetime import UTC, datetime

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from mlflow import MlflowClient  # noqa: E402

from app.main import create_app  # noqa: E402
from app.prediction_log import PredictionLogger  # noqa: E402
from app.service import ModelService  # noqa: E402
from src import register  # noqa: E402
from src.champion import load_champion  # noqa: E402
from src.common.config import Config, load_config  # noqa: E402
from src.common.io import write_atomic, write_json  # noqa: E402
from src.common.logs import run_stage  # noqa: E402
from src.common.paths import DEFAULT_CONFIG, Paths, get_paths  # noqa: E402
from src.common.schema import REQUEST_FIELDS, TARGET  # noqa: E402
from src.common.tracking import connect, experiment_id  # noqa: E402
from src.drift import check_batch, feature_frame  # noqa: E402
from src.evaluate import binary_metrics  # noqa: E402
from src.model import FlightDelayModel  # noqa: E402
from src.train import columns, fit_model, lineage_tags, log_run, score  # noqa: E402

log = logging.getLogger("simulate")


# ---------------------------------------------------------------- setup
def loop_settings(cfg: Config, paths: Paths) -> tuple[Config, Paths]:
    """The loop's own registered model, experiment and folders (a sandbox beside the real ones).
    Each replay gets a new store folder: MLflow caches its database engine per URI, so a store
    deleted and recreated at the same path in one process would be written through a stale one."""
    registry = cfg.registry.model_copy(
        update={"model_name": cfg.loop.model_name, "model_card": None}
    )
    train = cfg.train.model_copy(update={"experiment": cfg.loop.model_name})
    root = paths.reports / "loop"
    store = root / "mlruns" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    loop_paths = dataclasses.replace(paths, models=root / "models", mlflow=store, tracking=None)
    return cfg.model_copy(update={"registry": registry, "train": train}), loop_paths


def with_months(cfg: Config, train: list[int], validation: list[int], test: list[int]) -> Config:
    split = cfg.split.model_copy(
        update={"train_months": train, "validation_months": validation, "test_months": test}
    )
    return cfg.model_copy(update={"split": split})


def fit_candidate(data: pd.DataFrame, planes: pd.DataFrame, cfg: Config) -> FlightDelayModel:
    return fit_model("lightgbm", data[data["month"].isin(cfg.split.train_months)], planes, cfg)


def month_rows(data: pd.DataFrame, months: list[int]) -> pd.DataFrame:
    return data[data["month"].isin(months)].reset_index(drop=True)


# ---------------------------------------------------------------- the loop's steps
def serve_month(cfg: Config, paths: Paths, flights: pd.DataFrame, month: int) -> tuple:
    """Score the month through the API's batch route; returns (probabilities, model version)."""
    logger = PredictionLogger(paths.predictions / f"2013-{month:02d}")
    factory = lambda: ModelService(  # noqa: E731
        load_champion(cfg, paths), cfg.serve.threshold, logger
    )
    records = flights[list(REQUEST_FIELDS)].astype(object).where(flights.notna(), None)
    records = records.to_dict("records")
    probs, versions = [], set()
    with TestClient(create_app(factory, cfg)) as client:
        for start in range(0, len(records), cfg.loop.batch_size):
            body = {"flights": records[start : start + cfg.loop.batch_size]}
            r = client.post("/predict/batch", json=body)
            r.raise_for_status()
            out = r.json()
            versions.add(out["model_version"])
            probs += [p["delay_probability"] for p in out["predictions"]]
    assert len(versions) == 1, versions  # one champion per month: promotions happen at month end
    return np.array(probs), versions.pop()


def train_challenger(data, planes, cfg: Config, paths: Paths, month: int, client) -> str:
    """Challenger on every labelled month to date; validated later by the gate on month + 1."""
    ccfg = with_months(cfg, list(range(1, month + 1)), [month + 1], [month + 1])
    model = fit_candidate(data, planes, ccfg)
    run_id = log_run(
        model, {}, None, {"train": data}, lineage_tags(paths, ccfg), ccfg, "challenger"
    )
    version, _ = register.create_version(client, run_id, cfg.registry.model_name)
    register.move_alias(
        client, paths, cfg.registry.model_name, register.CHALLENGER, version.version, "register"
    )
    return str(version.version)


def run_loop(cfg: Config, paths: Paths, months: list[int]) -> dict:
    shutil.rmtree(paths.reports / "loop", ignore_errors=True)  # a fresh sandbox: repeatable runs
    lcfg, lpaths = loop_settings(cfg, paths)
    connect(lpaths)
    mlflow.set_experiment(experiment_id(lcfg.train.experiment, lpaths))
    client = MlflowClient()
    splits = {
        s: pd.read_parquet(paths.processed / f"{s}.parquet")
        for s in ("train", "validation", "test")
    }
    data = pd.concat(splits.values(), ignore_index=True)
    planes = pd.read_parquet(paths.processed / "planes.parquet")

    log.info(
        "initial champion: train %s, validate %s",
        lcfg.split.train_months,
        lcfg.split.validation_months,
    )
    frozen = fit_candidate(data, planes, lcfg)
    metrics, test_scores = score(frozen, {**splits})
    run_id = log_run(frozen, metrics, test_scores, splits, lineage_tags(paths, lcfg), lcfg)
    version, _ = register.create_version(client, run_id, lcfg.registry.model_name)
    register.move_alias(
        client, lpaths, lcfg.registry.model_name, "champion", version.version, "register"
    )
    register.publish_champion(client, lcfg, lpaths)
    reference = feature_frame(pd.read_parquet(paths.processed / "reference.parquet"), frozen)

    rows, scores = [], {"loop": [], "frozen": [], "y": [], "month": []}
    for month in months:
        start = time.perf_counter()
        flights = month_rows(data, [month])
        served, serving_version = serve_month(lcfg, lpaths, flights, month)
        y = flights[TARGET].to_numpy()  # labels arrive at month end
        frozen_scores = frozen.predict_proba(columns(flights))
        for key, values in (("loop", served), ("frozen", frozen_scores), ("y", y)):
            scores[key].append(values)
        scores["month"].append(np.full(len(y), month))
        row = {
            "month": month,
            "serving_version": str(serving_version),
            "rows": len(flights),
            "delay_rate": float(y.mean()),
            "loop_auc": binary_metrics(y, served)["roc_auc"],
            "frozen_auc": binary_metrics(y, frozen_scores)["roc_auc"],
        }
        champion = load_champion(lcfg, lpaths)
        snapshot, summary = check_batch(
            champion.model, reference, flights, lcfg, champion.metadata["metrics"]
        )
        html = lpaths.reports / "loop" / "drift" / f"2013-{month:02d}.html"
        write_atomic(html, lambda p, s=snapshot: s.save_html(str(p)))  # write_atomic makes the dir
        row |= {
            "drift_share": summary["drift_share"],
            "drifted_columns": summary["drifted_columns"],
            "performance_alerts": summary["performance_alerts"],
            "alert": summary["alert"],
        }
        if register.alias_version(client, lcfg.registry.model_name, register.CHALLENGER):
            result = register.gate(client, lcfg, lpaths, flights, f"2013-{month:02d}")
            row["gate"] = result.as_dict()
        if summary["retrain"] and month < max(months):
            row["challenger_version"] = train_challenger(data, planes, lcfg, lpaths, month, client)
        rows.append(row)
        log.info(
            "2013-%02d: served by v%s, AUC %.4f (frozen %.4f), drift share %.2f, alert %s, gate %s "
            "(%.0fs)",
            month,
            serving_version,
            row["loop_auc"],
            row["frozen_auc"],
            row["drift_share"],
            row["alert"],
            row.get("gate", {}).get("promote", "-"),
            time.perf_counter() - start,
        )
    return {"months": rows, "pooled_oct_dec": pooled_auc(scores, [10, 11, 12])}


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
def decision_text(row: dict) -> str:
    gate = row.get("gate")
    if not gate:
        return "–"
    verdict = "**promoted**" if gate["promote"] else "rejected"
    return (
        f"{verdict}: AUC gain {gate['auc_gain']:+.4f} (95% CI {gate['ci_low']:+.4f} to "
        f"{gate['ci_high']:+.4f}), log loss {gate['challenger_log_loss']:.4f} vs "
        f"{gate['champion_log_loss']:.4f}"
    )


def charts(rows: list[dict], out) -> None:
    months = [r["month"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(months, [r["frozen_auc"] for r in rows], "o--", label="frozen Jan–Jun model")
    ax.plot(months, [r["loop_auc"] for r in rows], "o-", label="loop champion (as served)")
    ax.set(xlabel="Month of 2013", ylabel="ROC AUC", title="Monthly AUC", xticks=months)
    ax.legend()
    fig.tight_layout()
    write_atomic(out / "auc.png", lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(months, [r["drift_share"] for r in rows], color="tab:orange")
    ax.axhline(0.5, color="k", ls=":", label="alert at drift share 0.5")
    ax.set(xlabel="Month of 2013", ylabel="Share of columns drifted", xticks=months, ylim=(0, 1))
    ax.set_title("Fleet and airport-mix drift vs Jan–Jun")
    ax.legend()
    fig.tight_layout()
    write_atomic(out / "drift.png", lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)


def render_report(result: dict) -> str:
    rows = result["months"]
    table = "\n".join(
        f"| {r['month']:02d} | v{r['serving_version']} | {r['delay_rate']:.3f} | {r['loop_auc']:.4f} "
        f"| {r['frozen_auc']:.4f} | {r['drift_share']:.2f} | {'; '.join(r['performance_alerts']) or '–'} "
        f"| {decision_text(r)} | {('v' + r['challenger_version']) if r.get('challenger_version') else '–'} |"
        for r in rows
    )
    gates = [r["gate"]["promote"] for r in rows if r.get("gate")]
    pooled = result["pooled_oct_dec"]
    pooled_line = (
        f"Pooled October–December ROC AUC: loop **{pooled['loop']:.4f}** vs frozen "
        f"{pooled['frozen']:.4f} ({pooled['loop'] - pooled['frozen']:+.4f})."
        if pooled
        else ""
    )
    return f"""# Monitoring loop: August–December 2013, replayed

<!-- Generated by `python -m src.simulate` (make loop); do not edit by hand. -->

Each month the champion serves the month's flights through the API, labels arrive at month end,
a pending challenger meets the gate on that month, the monitor checks drift and quality, and an
alert trains a challenger on every labelled month to date.

Promotions: {sum(gates)}; rejections: {len(gates) - sum(gates)}. {pooled_line}

| Month | Served by | Delay rate | AUC (loop) | AUC (frozen) | Drift share | Performance alerts | Gate | New challenger |
|---|---|---|---|---|---|---|---|---|
{table}

![Monthly AUC](auc.png)

![Drift share](drift.png)
"""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.simulate", description=__doc__.split("\n")[0])
    p.add_argument("--config", default=DEFAULT_CONFIG, help="pipeline config YAML")
    p.add_argument("--months", type=int, nargs="+", help="months to replay (default: config)")
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    result = run_loop(cfg, paths, args.months or cfg.loop.months)
    out = paths.reports / "loop"
    write_json(out / "decisions.json", result)
    charts(result["months"], out)
    write_atomic(out / "report.md", lambda p: p.write_text(render_report(result)))
    log.info("loop report written to %s", out / "report.md")
    return 0


def main(argv=None) -> int:
    return run_stage("simulate", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
