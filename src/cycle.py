"""The monitoring cycle: the production job a scheduler runs once a month's outcomes are in.

    python -m src.cycle --as-of 2013-10-31 [--config configs/default.yml] [--pushgateway URL]
    python -m src.cycle --reset-cursor 2013-09-30   # the date of the latest completed cycle

With only the data available at --as-of (the months of 2013 that ended by then):
1. checks drift and performance of @champion on the latest labelled month (Evidently);
2. joins the API's prediction log with the observed outcomes (data/outcomes/): live figures;
3. retrains: every labelled month, tree count by early stopping on the latest, refit
   (src/model/fit.py `retrain`), registered as @challenger;
4. gates it on evidence from before its refit (the recipe's backtest model vs @champion on
   the latest month) and promotes or rejects it, the evidence recorded on the version.
Steps 3 and 4 are src/monitoring/policy.py `policy_step`, which `make loop` also replays.

One cycle per date (a second run changes nothing and says so: the registered model's cursor
tag), one at a time (a lock on the registered model). An --as-of or a cursor later than the
data's last day is refused: it would silence every cycle until that date. Writes
reports/cycle/<as-of>/{summary.json,drift.html}; pushes its figures to a Prometheus
Pushgateway when one is given (--pushgateway or FD_PUSHGATEWAY).
Exit codes for cron: 0 nothing to do, 1 a decision was made or an alert raised, 2 an error.
"""

from __future__ import annotations

import argparse
import calendar
import logging
import re
from datetime import date, timedelta
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from src.common.config import CONFIG_HELP, Config, load_config
from src.common.errors import ModelNotFoundError, PipelineError
from src.common.io import write_json
from src.common.logs import CRON_ERROR, run_cron_stage
from src.common.paths import SPLITS, Paths, get_paths
from src.common.settings import Settings
from src.data.prepare import at_lead
from src.data.processed import load_processed, months_label
from src.model.fit import with_trees
from src.monitoring.drift import check_batch, record_check
from src.monitoring.outcomes import join_outcomes, live_figures, read_outcomes
from src.monitoring.policy import policy_step
from src.monitoring.push import push_cycle
from src.registry.lock import LockHeld, model_lock
from src.registry.promotion import settle
from src.registry.versions import CHALLENGER, CHAMPION, alias_version, create_version, move_alias
from src.serving.loader import LoadedModel, load_version
from src.serving.prediction_log import read_log
from src.serving.registry import MlflowRegistry
from src.tracking.runs import log_run
from src.tracking.store import connect, experiment_id, lineage_tags

log = logging.getLogger("cycle")
EXIT_NOTHING, EXIT_ACTED, EXIT_ERROR = 0, 1, CRON_ERROR
LAST_AS_OF = "cycle.last_as_of"  # registered model tag: the latest date a cycle completed
PIPELINE_FIRST = "run `make pipeline` first"
RESET = "; set it back with `python -m src.cycle --reset-cursor YYYY-MM-DD`"
# The drift check's fields a cycle's summary keeps.
DRIFT_FIELDS = (
    "drift_detected", "drift_share", "drifted_columns", "column_scores", "prediction_drift"
)  # fmt: skip


# ---------------------------------------------------------------- what is known at --as-of
def labelled_months(as_of: date, available: list[int]) -> list[int]:
    """The months of 2013 in the data whose last day is on or before `as_of`."""
    ended = [m for m in available if date(2013, m, calendar.monthrange(2013, m)[1]) <= as_of]
    if not ended:
        raise PipelineError(f"--as-of {as_of}: no month of the data {available} has ended by then")
    return ended


def processed(paths: Paths) -> tuple[pd.DataFrame, date]:
    """Every processed flight, and the last day they cover."""
    data = pd.concat([load_processed(paths, name) for name in SPLITS], ignore_index=True)
    return data, pd.to_datetime(data[["year", "month", "day"]]).max().date()


def labelled_data(data: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """The flights of the months labelled by `as_of`; later months never leave this function."""
    months = labelled_months(as_of, sorted(data["month"].unique().tolist()))
    return data[data["month"].isin(months)].reset_index(drop=True)


def not_ahead(what: str, day: date, last_day: date, fix: str = "") -> None:
    """No date the cycle acts on may run ahead of the data: a cursor later than the data
    would make every cycle until then do nothing ("already ran")."""
    if day > last_day:
        raise PipelineError(f"{what} {day} is later than the data's last day, {last_day}{fix}")


def iso_date(text: str) -> date:
    """argparse's type for dates: YYYY-MM-DD only (date.fromisoformat also reads 20130901)."""
    try:
        return date.fromisoformat(text if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date written YYYY-MM-DD") from None


def champion_of(client: MlflowClient, cfg: Config, paths: Paths) -> LoadedModel:
    name = cfg.registry.model_name
    version = alias_version(client, name, CHAMPION)
    if version is None:
        raise ModelNotFoundError(f"{name}: no @{CHAMPION}; {PIPELINE_FIRST}")
    return load_version(cfg, paths, MlflowRegistry(paths), version)


# ---------------------------------------------------------------- the checks
def check_window(cfg: Config, paths: Paths, champion: LoadedModel, window, as_of: str) -> dict:
    """Drift and performance of the champion on the latest labelled month."""
    snapshot, summary = check_batch(champion, load_processed(paths, "reference"), window, cfg)
    summary |= {"batch": f"cycle {as_of}", "created_at": as_of}
    record_check(snapshot, summary, paths.cycle_file(as_of, "drift.html"), paths.drift_history)
    return summary


def check_live(paths: Paths, window_month: int) -> dict:
    """The window's logged predictions joined with their outcomes; counts and figures."""
    if not any(paths.predictions.glob("predictions-*.jsonl")):
        log.info("no prediction log in %s: no live figures", paths.predictions)
        counts = dict.fromkeys(("predictions", "joined", "cancelled", "unmatched"), 0)
        return {"counts": counts, "figures": [], "torn_lines": 0}
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
    """The policy step (`policy_step`), acted on: the challenger registered, then gated on
    the evidence; returns (the challenger's version, trees and months; the gate's result)."""
    step = policy_step(labelled, load_processed(paths, "planes"), champion.model, cfg)
    retrained, months = step.retrained, sorted(labelled["month"].unique().tolist())
    run_cfg = challenger_config(cfg, months, retrained.latest_month, retrained.trees)
    tags = {**lineage_tags(paths, run_cfg), "cycle.as_of": as_of}
    run_id = log_run(retrained.model, {}, {"train": labelled}, tags, run_cfg, CHALLENGER)
    name = cfg.registry.model_name
    version = create_version(client, run_id, name).version
    move_alias(client, paths, name, CHALLENGER, version, "register")
    evidence = {
        "window": months_label([retrained.latest_month]),
        "evidence": "backtest: the recipe before its refit",
        "challenger_train_months": months,
        "trees": retrained.trees,
    }
    settle(client, cfg, paths, step.gate, evidence, step.window_metrics)
    challenger = {"version": str(version), "trees": retrained.trees, "train_months": months}
    return challenger, step.gate.as_dict()


# ---------------------------------------------------------------- one cycle
def run_cycle(cfg: Config, paths: Paths, as_of: date) -> dict:
    """One cycle for `as_of` under the lock; the summary (status "done" or "already ran")."""
    data, last_day = processed(paths)
    not_ahead("--as-of", as_of, last_day)
    labelled = labelled_data(data, as_of)
    connect(paths)
    mlflow.set_experiment(experiment_id=experiment_id(cfg.train.experiment, paths))
    client, name = MlflowClient(), cfg.registry.model_name
    stale = timedelta(minutes=cfg.cycle.stale_lock_minutes)
    with model_lock(client, name, stale):
        last = cursor(client, name)
        if last is not None:
            not_ahead(f"{name}'s cursor {LAST_AS_OF}", last, last_day, RESET)
            if last >= as_of:
                return {"status": "already ran", "as_of": str(as_of), "last_as_of": str(last)}
        summary = _cycle(client, cfg, paths, as_of.isoformat(), labelled)
        client.set_registered_model_tag(name, LAST_AS_OF, as_of.isoformat())
    return summary


def cursor(client: MlflowClient, name: str) -> date | None:
    """The date of the latest completed cycle (a tag on the registered model)."""
    try:
        tag = client.get_registered_model(name).tags.get(LAST_AS_OF)
    except MlflowException:
        raise ModelNotFoundError(f"{name}: not in the registry; {PIPELINE_FIRST}") from None
    try:
        return None if tag is None else iso_date(tag)
    except argparse.ArgumentTypeError as exc:
        raise PipelineError(f"{name}'s cursor {LAST_AS_OF}: {exc}{RESET}") from None


def reset_cursor(cfg: Config, paths: Paths, day: date) -> date | None:
    """Set the cursor to `day` (no later than the data), under the lock; returns the date it
    replaces. The next cycle acts for any --as-of after `day`."""
    not_ahead("--reset-cursor", day, processed(paths)[1])
    connect(paths)
    client, name = MlflowClient(), cfg.registry.model_name
    with model_lock(client, name, timedelta(minutes=cfg.cycle.stale_lock_minutes)):
        before = cursor(client, name)
        client.set_registered_model_tag(name, LAST_AS_OF, day.isoformat())
    return before


def _cycle(client, cfg: Config, paths: Paths, as_of: str, labelled: pd.DataFrame) -> dict:
    champion = champion_of(client, cfg, paths)
    latest = int(labelled["month"].max())
    window = at_lead(labelled[labelled["month"] == latest], cfg.split.served_lead_hours)
    months, label = sorted(int(m) for m in labelled["month"].unique()), months_label([latest])
    message = "cycle %s: @champion v%s, labelled months %s, window %s"
    log.info(message, as_of, champion.version, months, label)
    drift = check_window(cfg, paths, champion, window, as_of)
    summary: dict[str, Any] = {
        "status": "done",
        "as_of": as_of,
        "model": cfg.registry.model_name,
        "window": label,
        "labelled_months": months,
        "champion_before": champion.version,
        "drift": {k: drift[k] for k in DRIFT_FIELDS},
        "performance": {**(drift["quality"] or {}), "alerts": drift["performance_alerts"]},
        "live": check_live(paths, latest),
        "alerts": drift["alerts"],
        "decision": "none",
        "challenger": None,
        "gate": None,
    }
    if cfg.cycle.retrain == "always" or summary["alerts"]:
        if latest == months[0]:
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
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--as-of", type=iso_date, help="YYYY-MM-DD: run the cycle for this date")
    when.add_argument(
        "--reset-cursor",
        type=iso_date,
        metavar="DATE",
        help=f"set the date of the latest completed cycle ({LAST_AS_OF}) to DATE, and exit",
    )
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--pushgateway", help="Pushgateway URL (default: FD_PUSHGATEWAY; unset: none)")
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    name = cfg.registry.model_name
    what = f"cycle {args.as_of}" if args.as_of else f"{name}: --reset-cursor"
    try:
        if args.reset_cursor:
            before = reset_cursor(cfg, paths, args.reset_cursor)
            print(f"{name}: cursor {LAST_AS_OF} {before or 'unset'} -> {args.reset_cursor}")
            return EXIT_NOTHING
        summary = run_cycle(cfg, paths, args.as_of)
    except LockHeld as exc:
        if exc.stale:
            raise
        print(f"{what}: nothing done: another cycle is running ({exc})")
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
