"""The monitoring cycle: the production job a scheduler runs once a month's outcomes are in.

    python -m src.cycle --as-of 2013-10-31 [--config configs/default.yml] [--pushgateway URL]

With only the data available at --as-of (the months of 2013 that ended by then):
1. checks drift and performance of @champion on the latest labelled month (Evidently);
2. joins the API's prediction log with the observed outcomes (data/outcomes/): live figures;
3. retrains: every labelled month, tree count by early stopping on the latest, refit
   (src/model/fit.py `retrain`), registered as @challenger;
4. gates it on evidence from before its refit (the recipe's backtest model vs @champion on
   the latest month) and promotes or rejects it, the evidence recorded on the version.

One cycle per date (a second run changes nothing and says so), one at a time (a lock on the
registered model). Writes reports/cycle/<as-of>/{summary.json,drift.html}; pushes its figures
to a Prometheus Pushgateway when one is given (--pushgateway or FD_PUSHGATEWAY).
Exit codes for cron: 0 nothing to do, 1 a decision was made or an alert raised, 2 an error.
"""

from __future__ import annotations

import argparse
import calendar
import logging
from datetime import date, timedelta
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from src.common.config import CONFIG_HELP, Config, load_config
from src.common.errors import ModelNotFoundError, PipelineError
from src.common.io import write_atomic, write_json
from src.common.logs import CRON_ERROR, run_cron_stage
from src.common.paths import SPLITS, Paths, get_paths
from src.common.schema import TARGET
from src.common.settings import Settings
from src.data.processed import load_processed, months_label
from src.model.evaluate import binary_metrics
from src.model.features import request_columns
from src.model.fit import retrain, with_trees
from src.monitoring.drift import append_history, check_batch, feature_frame, history_row
from src.monitoring.outcomes import join_outcomes, live_figures, read_outcomes
from src.monitoring.push import push_cycle
from src.registry.lock import LockHeld, model_lock
from src.registry.promotion import compare, settle
from src.registry.versions import CHALLENGER, CHAMPION, alias_version, create_version, move_alias
from src.serving.loader import LoadedModel, load_version
from src.serving.prediction_log import read_log
from src.serving.registry import MlflowRegistry
from src.tracking.runs import log_run
from src.tracking.store import connect, experiment_id, lineage_tags

log = logging.getLogger("cycle")
EXIT_NOTHING, EXIT_ACTED, EXIT_ERROR = 0, 1, CRON_ERROR
LAST_AS_OF = "cycle.last_as_of"  # registered model tag: the latest date a cycle completed


# ---------------------------------------------------------------- what is known at --as-of
def labelled_months(as_of: date, available: list[int]) -> list[int]:
    """The months of 2013 in the data whose last day is on or before `as_of`."""
    ended = [m for m in available if date(2013, m, calendar.monthrange(2013, m)[1]) <= as_of]
    if not ended:
        raise PipelineError(f"--as-of {as_of}: no month of the data {available} has ended by then")
    return ended


def labelled_data(paths: Paths, as_of: date) -> pd.DataFrame:
    """Every processed flight of the months labelled by `as_of`; later months never leave
    this function."""
    data = pd.concat([load_processed(paths, name) for name in SPLITS], ignore_index=True)
    months = labelled_months(as_of, sorted(data["month"].unique().tolist()))
    return data[data["month"].isin(months)].reset_index(drop=True)


def champion_of(client: MlflowClient, cfg: Config, paths: Paths) -> LoadedModel:
    name = cfg.registry.model_name
    version = alias_version(client, name, CHAMPION)
    if version is None:
        raise ModelNotFoundError(f"{name}: no @{CHAMPION}; run `make pipeline` first")
    return load_version(cfg, paths, MlflowRegistry(paths), version)


# ---------------------------------------------------------------- the checks
def check_window(cfg: Config, paths: Paths, champion: LoadedModel, window, as_of: str) -> dict:
    """Drift and performance of the champion on the latest labelled month."""
    reference = feature_frame(load_processed(paths, "reference"), champion.model)
    snapshot, summary = check_batch(
        champion.model, reference, window, cfg, champion.metadata.get("metrics", {})
    )
    write_atomic(paths.cycle_file(as_of, "drift.html"), lambda p: snapshot.save_html(str(p)))
    summary |= {"batch": f"cycle {as_of}", "model": f"{champion.name} v{champion.version}"}
    summary["created_at"] = as_of
    append_history(paths.drift_history, history_row(summary))
    return summary


def check_live(paths: Paths, window_month: int) -> dict:
    """The window's logged predictions joined with their outcomes; counts and figures."""
    if not any(paths.predictions.glob("predictions-*.jsonl")):
        log.info("no prediction log in %s: no live figures", paths.predictions)
        return {
            "counts": {s: 0 for s in ("predictions", "joined", "cancelled", "unmatched")},
            "figures": [],
            "torn_lines": 0,
        }
    logged, torn = read_log(paths.predictions)
    logged = logged[(logged["year"] == 2013) & (logged["month"] == window_month)]
    joined, counts = join_outcomes(logged, read_outcomes(paths.outcomes))
    figures = live_figures(joined)
    log.info("live: %s; %s", counts, [(f["role"], f["version"], f["roc_auc"]) for f in figures])
    return {"counts": counts, "figures": figures, "torn_lines": torn}


# ---------------------------------------------------------------- retrain and gate
def challenger_config(cfg: Config, months: list[int], latest: int, trees: int) -> Config:
    """The config the challenger's run logs: its tree count and the months it saw (train:
    every labelled month; validation and test: the latest, its early stopping and gate
    window), so the run's params and config artifact say what it was trained on."""
    split = {"train_months": months, "validation_months": [latest], "test_months": [latest]}
    return with_trees(cfg, trees).model_copy(update={"split": cfg.split.model_copy(update=split)})


def challenge(client, cfg: Config, paths: Paths, champion: LoadedModel, labelled, as_of: str):
    """Train the challenger by the recipe, register it, gate it; returns (the challenger's
    version, trees and months; the gate's result)."""
    planes = load_processed(paths, "planes")
    recipe = retrain(labelled, planes, cfg, cfg.cycle.early_stopping_patience, cfg.cycle.max_trees)
    months = sorted(labelled["month"].unique().tolist())
    window = labelled[labelled["month"] == recipe.latest_month]
    run_cfg = challenger_config(cfg, months, recipe.latest_month, recipe.trees)
    tags = {**lineage_tags(paths, run_cfg), "cycle.as_of": as_of}
    run_id = log_run(recipe.model, {}, {"train": labelled}, tags, run_cfg, CHALLENGER)
    name = cfg.registry.model_name
    version = create_version(client, run_id, name).version
    move_alias(client, paths, name, CHALLENGER, version, "register")
    # The evidence: the recipe's model before the refit vs the champion, on the latest month.
    cols, y = request_columns(window), window[TARGET].to_numpy()
    scores = {
        CHAMPION: champion.model.predict_proba(cols),
        CHALLENGER: recipe.backtest.predict_proba(cols),
    }
    result = compare(y, scores, cfg)
    evidence = {
        "window": months_label([recipe.latest_month]),
        "evidence": "backtest: the recipe before its refit",
        "challenger_train_months": months,
        "trees": recipe.trees,
    }
    settle(client, cfg, paths, result, evidence, binary_metrics(y, scores[CHALLENGER]))
    challenger = {"version": str(version), "trees": recipe.trees, "train_months": months}
    return challenger, result.as_dict()


# ---------------------------------------------------------------- one cycle
def run_cycle(cfg: Config, paths: Paths, as_of: date) -> dict:
    """One cycle for `as_of` under the lock; the summary (status "done" or "already ran")."""
    connect(paths)
    mlflow.set_experiment(experiment_id=experiment_id(cfg.train.experiment, paths))
    client, name = MlflowClient(), cfg.registry.model_name
    stale = timedelta(minutes=cfg.cycle.stale_lock_minutes)
    with model_lock(client, name, stale):
        last = last_as_of(client, name)
        if last is not None and date.fromisoformat(last) >= as_of:
            return {"status": "already ran", "as_of": as_of.isoformat(), "last_as_of": last}
        summary = _cycle(client, cfg, paths, as_of.isoformat(), labelled_data(paths, as_of))
        client.set_registered_model_tag(name, LAST_AS_OF, as_of.isoformat())
    return summary


def last_as_of(client: MlflowClient, name: str) -> str | None:
    """The date of the latest completed cycle (a tag on the registered model)."""
    try:
        return client.get_registered_model(name).tags.get(LAST_AS_OF)
    except MlflowException:
        raise ModelNotFoundError(
            f"{name}: not in the registry; run `make pipeline` first"
        ) from None


def _cycle(client, cfg: Config, paths: Paths, as_of: str, labelled: pd.DataFrame) -> dict:
    champion = champion_of(client, cfg, paths)
    latest = int(labelled["month"].max())
    window = labelled[labelled["month"] == latest].reset_index(drop=True)
    log.info(
        "cycle %s: @%s v%s, labelled months %s, window %s",
        as_of,
        CHAMPION,
        champion.version,
        sorted(labelled["month"].unique()),
        months_label([latest]),
    )
    drift = check_window(cfg, paths, champion, window, as_of)
    alerts = (["drift"] if drift["drift_detected"] else []) + (
        ["performance"] if drift["performance_alerts"] else []
    )
    summary: dict[str, Any] = {
        "status": "done",
        "as_of": as_of,
        "model": cfg.registry.model_name,
        "window": months_label([latest]),
        "labelled_months": sorted(int(m) for m in labelled["month"].unique()),
        "champion_before": champion.version,
        "drift": {
            k: drift[k]
            for k in (
                "drift_detected",
                "drift_share",
                "drifted_columns",
                "column_scores",
                "prediction_drift",
            )
        },
        "performance": {**(drift["quality"] or {}), "alerts": drift["performance_alerts"]},
        "live": check_live(paths, latest),
        "alerts": alerts,
        "decision": "none",
        "challenger": None,
        "gate": None,
    }
    if cfg.cycle.retrain == "always" or alerts:
        if latest == min(summary["labelled_months"]):
            log.info("one labelled month only: nothing to stop early on; no challenger")
        else:
            summary["challenger"], summary["gate"] = challenge(
                client, cfg, paths, champion, labelled, as_of
            )
            summary["decision"] = "promote" if summary["gate"]["promote"] else "reject"
    summary["champion_version"] = alias_version(client, cfg.registry.model_name, CHAMPION)
    write_json(paths.cycle_file(as_of, "summary.json"), summary)
    return summary


# ---------------------------------------------------------------- command line
def one_line(summary: dict) -> str:
    """What cron mails: the decision, the alerts, the figures that led to them."""
    gate = summary["gate"]
    text = f"cycle {summary['as_of']} ({summary['window']}): {summary['decision']}"
    if gate is not None:
        text += f" v{summary['challenger']['version']}: {gate['reason']}"
    text += f"; alerts: {', '.join(summary['alerts']) or 'none'}"
    text += f"; drift share {summary['drift']['drift_share']:.2f}"
    counts = summary["live"]["counts"]
    text += f"; live rows joined {counts['joined']}, unmatched {counts['unmatched']}"
    return text + f"; @champion v{summary['champion_version']}"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.cycle", description=__doc__.split("\n")[0])
    p.add_argument("--as-of", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--pushgateway", help="Pushgateway URL (default: FD_PUSHGATEWAY; unset: none)")
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    try:
        summary = run_cycle(cfg, paths, args.as_of)
    except LockHeld as exc:
        if exc.stale:
            raise
        print(f"cycle {args.as_of}: nothing done: another cycle is running ({exc})")
        return EXIT_NOTHING
    if summary["status"] == "already ran":
        print(f"cycle {args.as_of}: nothing to do: a cycle for {summary['last_as_of']} already ran")
        return EXIT_NOTHING
    print(one_line(summary))
    gateway = args.pushgateway or Settings().pushgateway
    if gateway:
        try:
            push_cycle(gateway, summary)
        except OSError as exc:
            log.error("decision recorded, but the figures were not pushed to %s: %s", gateway, exc)
            return EXIT_ERROR
    acted = summary["decision"] != "none" or summary["alerts"]
    return EXIT_ACTED if acted else EXIT_NOTHING


def main(argv=None) -> int:
    return run_cron_stage("cycle", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
