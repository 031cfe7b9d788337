"""Lead experiment (issue 24, item 2): does a model that scores each flight as of a moment,
with the feature views and the lead as features, meet the issue's quality goals?

Train January-June at every lead, stop early on July, test August-December (the config's
split and LightGBM parameters). Each recipe is a feature list; the report gives test ROC AUC
overall and by lead, the worst month and the log loss at the 2 h lead. Nothing is chosen on
the test months: the ablation removes each group from the full recipe in turn.

    OMP_NUM_THREADS=1 .venv/bin/python -m scripts.lead_experiment [--ablation]

Needs the raw snapshot (`make pipeline`) and the offline store (`python -m src.features`).
Writes reports/lead_experiment.json.
"""

from __future__ import annotations

import argparse
import logging
import resource
import time

import lightgbm as lgb
import numpy as np
import pandas as pd

from src.common.config import CONFIG_HELP, Config, load_config
from src.common.io import write_json
from src.common.logs import setup_logging
from src.common.paths import get_paths
from src.common.schema import ORIGIN, TARGET, WEATHER, Column
from src.data.validate import read_snapshot
from src.featurestore.offline import as_of, join_view, load_views
from src.featurestore.training import LEADS_HOURS, training_examples
from src.featurestore.views import (
    AIRPORT_STATE,
    WINDOW,
    FeatureView,
    build_airport_state,
    scheduled_departure,
)
from src.model.evaluate import auc_by_group, binary_metrics
from src.model.features import (
    UNRECORDED_FEATURES,
    WEATHER_NAMES,
    build_features,
    fit_state,
    request_columns,
)
from src.model.fit import lightgbm_data, lightgbm_params

log = logging.getLogger("lead_experiment")

# The view fields a recipe may add to today's features, by group. The view's weather is
# renamed: today's weather fields are the readings at the scheduled hour, these the latest
# reading at the moment. The timetable's age is left out: it is a function of the lead.
NOW = {name: f"now_{name}" for name in WEATHER_NAMES}
STATE = ["airport_departed_2h", "airport_mean_delay_2h", "airport_share_delayed_2h"]
HISTORY = {"before_2h": pd.Timedelta(hours=2), "before_4h": pd.Timedelta(hours=4)}
GROUPS = {
    "lead": ["lead_hours"],
    "timetable": [
        *("origin_hour_scheduled", "origin_day_scheduled", "carrier_day_scheduled"),
        *("plane_leg", "plane_turnaround_min"),
    ],
    "weather_now": [*NOW.values(), "weather_age_s"],
    "plane_last_leg": ["plane_last_dep_delay", "plane_last_leg_age_s"],
    "airport_state": [*STATE, "airport_state_age_s"],
    # Candidates, not views yet: the airport state at earlier moments (the
    # two-hour windows before the current one) and over the three airports together; the
    # flights due at the origin in the last two hours that had not left by the moment; the
    # departures of the last two hours to the flight's destination.
    "airport_history": [f"{name}_{back}" for back in HISTORY for name in STATE],
    "nyc_state": [f"nyc_{name}" for name in STATE],
    "overdue": ["overdue_2h", "overdue_mean_min"],
    "dest_state": [f"dest_{name}" for name in STATE],
}
VIEW_GROUPS = ("lead", "timetable", "weather_now", "plane_last_leg", "airport_state")
CANDIDATES = ("airport_history", "nyc_state", "overdue", "dest_state")
REPORTED_LEAD = 2.0  # the issue's goals are set at a 2 h lead
VIEW_FIELDS = [name for names in GROUPS.values() for name in names]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m scripts.lead_experiment", description=__doc__)
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument(
        "--ablation", action="store_true", help="also fit the full recipe less each group"
    )
    return p.parse_args(argv)


def recipes(today: list[str], ablation: bool) -> dict[str, tuple[list[str], tuple[float, ...]]]:
    """Recipe name -> (its features, the leads it trains on). A recipe without a state view
    trains on one lead: its features do not change with the lead."""
    views = [*today, *(name for group in VIEW_GROUPS for name in GROUPS[group])]
    everything = [*today, *(name for names in GROUPS.values() for name in names)]
    out = {
        "today": (today, (REPORTED_LEAD,)),
        "today + timetable": ([*today, *GROUPS["timetable"]], (REPORTED_LEAD,)),
        "views": (views, LEADS_HOURS),
        "views, weather as of the moment only": (
            [f for f in views if f not in WEATHER_NAMES],
            LEADS_HOURS,
        ),
        "views, trained at 2 h only": (views, (REPORTED_LEAD,)),
        **{f"views + {group}": ([*views, *GROUPS[group]], LEADS_HOURS) for group in CANDIDATES},
        "all": (everything, LEADS_HOURS),
    }
    if ablation:
        groups = {"today's weather": list(WEATHER_NAMES), **GROUPS}
        for group, names in groups.items():
            out[f"all - {group}"] = ([f for f in everything if f not in names], LEADS_HOURS)
    return out


def example_frame(raw: dict, tables: dict, cfg: Config) -> tuple[pd.DataFrame, list[str]]:
    """Every example at every lead: today's features (from the flight's request fields, the
    model's own code), the views' fields, `lead_hours`, month, target; float32 to keep the
    memory down. Returns (frame, today's feature names)."""
    flights = raw["flights"]
    examples = training_examples(flights, tables)
    requests = join_weather(drop_cancelled(flights).assign(_row=lambda f: f.index), raw["weather"])
    requests = requests.set_index("_row")
    train = requests[requests["month"].isin(cfg.split.train_months)]
    state = fit_state(request_columns(train), raw["planes"], UNRECORDED_FEATURES)  # the 22
    today = build_features(request_columns(requests), state).astype(np.float32)
    rows = requests.index.get_indexer(examples.index)
    candidates = airport_history(examples, tables) | overdue(examples, flights)
    candidates |= destination_state(examples, flights)
    examples = examples.rename(columns=NOW).assign(**candidates)
    views = examples[VIEW_FIELDS].astype(np.float32).to_numpy()
    frame = pd.DataFrame(np.hstack([today[rows], views]), columns=[*state.features, *VIEW_FIELDS])
    frame["month"] = requests["month"].to_numpy()[rows]
    frame[TARGET] = examples[TARGET].to_numpy()
    return frame, list(state.features)


def drop_cancelled(flights: pd.DataFrame) -> pd.DataFrame:
    return flights[flights["dep_delay"].notna()]


def join_weather(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    """The reading of the scheduled hour (today's recipe: a perfect forecast, once the
    pipeline's weather became the latest observation as of the moment)."""
    cols = ["origin", "time_hour", *(c.name for c in WEATHER)]
    return flights.merge(weather[cols], on=["origin", "time_hour"], how="left", validate="m:1")


def airport_history(examples: pd.DataFrame, tables: dict) -> dict[str, np.ndarray]:
    """The airport_history and nyc_state fields of each example, from the airport state view
    looked up at earlier moments, and at each origin as of the example's moment."""
    keys, state = examples[["origin", "as_of"]], {"airport_state": tables["airport_state"]}
    out = {}
    for back, offset in HISTORY.items():
        earlier = as_of(keys.assign(as_of=keys["as_of"] - offset), state)
        out |= {f"{name}_{back}": earlier[name].to_numpy() for name in STATE}
    each = [as_of(keys.assign(origin=origin), state) for origin in ORIGIN.allowed]
    # No row yet at an origin: nothing has left there, so it adds nothing to the sums.
    count = sum(e[STATE[0]].fillna(0).to_numpy() for e in each)
    delay, late = (
        sum((e[name] * e[STATE[0]]).fillna(0).to_numpy() for e in each) for name in STATE[1:]
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_delay, share_late = np.where(count > 0, [delay / count, late / count], np.nan)
    out |= dict(zip(GROUPS["nyc_state"], [count, mean_delay, share_late], strict=True))
    return out


# Declared as a view would be, so the store's as-of join looks it up.
OVERDUE = FeatureView(
    "overdue",
    entities=("origin",),
    event_time="at",
    ttl=None,
    fields=(Column("n", "int"), Column("s", "float")),
    build=lambda raw: overdue_table(raw["flights"]),
)


def overdue_table(flights: pd.DataFrame) -> pd.DataFrame:
    """Per origin, a row at every moment it changes: the flights scheduled in the last two
    hours that had not left by then (a cancelled one is overdue until it leaves the window),
    with the sum of their scheduled times, in seconds, for their mean lateness. A flight is
    overdue from its scheduled departure to its departure or two hours later."""
    sched = scheduled_departure(flights)
    left = sched + pd.to_timedelta(flights["dep_delay"], unit="min")
    end = left.where(left < sched + WINDOW, sched + WINDOW)  # NaT (cancelled): the window
    late = (end > sched).to_numpy()
    seconds = (sched - pd.Timestamp("2013-01-01", tz="UTC")).dt.total_seconds()
    enter = pd.DataFrame({"origin": flights["origin"], "at": sched, "n": 1, "s": seconds})[late]
    leave = enter.assign(at=end[late], n=-1, s=-enter["s"])
    change = pd.concat([enter, leave]).groupby(["origin", "at"])[["n", "s"]].sum()
    return change.groupby(level="origin").cumsum().reset_index()


def overdue(examples: pd.DataFrame, flights: pd.DataFrame) -> dict[str, np.ndarray]:
    keys = examples[["origin", "as_of"]].reset_index(drop=True)  # join_view wants positions
    found = join_view(keys, OVERDUE, overdue_table(flights), "as_of")
    count = found["n"].fillna(0).to_numpy()
    now = (found["as_of"] - pd.Timestamp("2013-01-01", tz="UTC")).dt.total_seconds().to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_late = np.where(count > 0, (count * now - found["s"].to_numpy()) / count / 60, np.nan)
    return {"overdue_2h": count, "overdue_mean_min": mean_late}


def destination_state(examples: pd.DataFrame, flights: pd.DataFrame) -> dict[str, np.ndarray]:
    """The airport state view's build, keyed by destination instead of origin."""
    by_dest = build_airport_state({"flights": flights.assign(origin=flights["dest"])})
    keys = pd.DataFrame({"origin": examples["dest"].to_numpy(), "as_of": examples["as_of"].array})
    found = join_view(keys, AIRPORT_STATE, by_dest, "as_of")
    return {f"dest_{name}": found[name].to_numpy() for name in STATE}


def fit_and_score(frame: pd.DataFrame, features: list[str], leads, cfg: Config) -> dict:
    """LightGBM on the train months at `leads`, early-stopped on the validation months at
    every lead; scored on the test months at every lead."""
    split = cfg.split
    stop = cfg.train.tuning
    fitted_on = frame[frame["month"].isin(split.train_months) & frame["lead_hours"].isin(leads)]
    holdout = frame[frame["month"].isin(split.validation_months)]
    test = frame[frame["month"].isin(split.test_months)]
    train_set = lightgbm_data(fitted_on[features].to_numpy(), fitted_on[TARGET], features)
    valid_set = lightgbm_data(holdout[features].to_numpy(), holdout[TARGET], features, train_set)
    start = time.perf_counter()
    booster = lgb.train(
        lightgbm_params(cfg.train.lightgbm, cfg.seed),
        train_set,
        num_boost_round=stop.max_trees,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(stop.early_stopping_patience, verbose=False)],
    )
    seconds = time.perf_counter() - start
    best = booster.best_iteration
    p = booster.predict(test[features].to_numpy(), num_iteration=best)
    at_2h_valid = holdout["lead_hours"].eq(REPORTED_LEAD).to_numpy()
    p_valid = booster.predict(holdout.loc[at_2h_valid, features].to_numpy(), num_iteration=best)
    valid_auc = binary_metrics(holdout.loc[at_2h_valid, TARGET].to_numpy(), p_valid)["roc_auc"]
    y, lead, month = (
        test[TARGET].to_numpy(),
        test["lead_hours"].to_numpy(),
        test["month"].to_numpy(),
    )
    at_2h = lead == REPORTED_LEAD
    by_month = auc_by_group(y[at_2h], p[at_2h], month[at_2h])
    return {
        "features": len(features),
        "train_rows": len(fitted_on),
        "trees": best,
        "validation_roc_auc_2h": valid_auc,
        "fit_s": round(seconds, 1),
        "test_roc_auc": binary_metrics(y, p)["roc_auc"],
        "roc_auc_by_lead": {f"{k:g}h": v for k, v in auc_by_group(y, p, lead).items()},
        "roc_auc_by_month_2h": by_month,
        "worst_month_2h": min(by_month.values()),
        "log_loss_2h": binary_metrics(y[at_2h], p[at_2h])["log_loss"],
    }


def table(results: dict[str, dict]) -> str:
    leads = [f"{lead:g}h" for lead in LEADS_HOURS]
    head = ["recipe", "trees", "July 2h", "all", *leads, "worst month 2h", "log loss 2h"]
    lines = [" | ".join(head)]
    for name, r in results.items():
        by_lead = [f"{r['roc_auc_by_lead'][lead]:.4f}" for lead in leads]
        cells = [name, str(r["trees"]), f"{r['validation_roc_auc_2h']:.4f}"]
        cells += [f"{r['test_roc_auc']:.4f}", *by_lead]
        lines.append(" | ".join([*cells, f"{r['worst_month_2h']:.4f}", f"{r['log_loss_2h']:.4f}"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    setup_logging()
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    start = time.perf_counter()
    raw = read_snapshot(paths, cfg.snapshot)
    frame, today = example_frame(raw, load_views(paths), cfg)
    del raw
    log.info("%d examples x %d columns in %.0f s", *frame.shape, time.perf_counter() - start)
    results = {}
    for name, (features, leads) in recipes(today, args.ablation).items():
        results[name] = fit_and_score(frame, features, leads, cfg)
        log.info("%s: %s", name, {k: v for k, v in results[name].items() if "by_" not in k})
    print(table(results))
    report = {
        "config": cfg.name,
        "leads_hours": list(LEADS_HOURS),
        "groups": GROUPS,
        "recipes": results,
        "wall_s": round(time.perf_counter() - start, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    write_json(paths.reports / "lead_experiment.json", report)
    log.info("wrote %s", paths.reports / "lead_experiment.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
