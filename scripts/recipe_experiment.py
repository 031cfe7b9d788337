"""Recipe experiment (issue 25, the explanation budget): LightGBM's tree size against what it
costs to explain one flight.

TreeSHAP walks every leaf of every tree for each flight, at a cost that grows with leaves
x depth^2. Each recipe changes the tree size of configs/default.yml's parameters and is
trained as `src.train` trains (each flight at one of its leads), early-stopped on the
validation month, and scored on the test months, as `src.train` scores. Recipes are chosen
on the validation month's 2 h ROC AUC; the test columns are reported, not chosen on.

The CPU columns time one flight at a time, as the API scores and explains it
(`FlightDelayModel.predict_one` and `explain_one`, the plain lightgbm.Booster), over the
same test flights, interleaved by round: they compare recipes with each other in one run.

    OMP_NUM_THREADS=1 .venv/bin/python -m scripts.recipe_experiment

Needs `make pipeline` (the processed splits). Writes reports/recipe_experiment.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

from src.common.config import CONFIG_HELP, Config, load_config
from src.common.io import write_json
from src.common.logs import setup_logging
from src.common.paths import SPLITS, get_paths
from src.data.processed import load_processed
from src.model.features import request_records
from src.model.fit import early_stopped, score, with_lightgbm
from src.model.model import FlightDelayModel

log = logging.getLogger("recipe_experiment")

# (num_leaves, max_depth, min_child_samples): -1 is no depth limit.
RECIPES = [
    (255, -1, 400),
    (63, -1, 400),
    (47, 6, 400),
    (63, 6, 400),
    (31, 6, 400),
    (31, -1, 400),
    (31, 7, 400),
    (31, 6, 200),
    (31, 6, 800),
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m scripts.recipe_experiment", description=__doc__)
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--flights", type=int, default=300, help="test flights timed one by one")
    p.add_argument("--rounds", type=int, default=3)
    return p.parse_args(argv)


def fitted(recipe: tuple[int, int, int], splits: dict, cfg: Config) -> FlightDelayModel:
    leaves, depth, rows = recipe
    params = cfg.train.lightgbm.model_copy(
        update={"num_leaves": leaves, "max_depth": depth, "min_child_samples": rows}
    )
    stop = cfg.train.tuning
    model, _ = early_stopped(
        splits["train"],
        splits["validation"],
        splits["planes"],
        with_lightgbm(cfg, params),
        stop.early_stopping_patience,
        stop.max_trees,
    )
    return model


def cpu_ms(call, records: list[dict]) -> float:
    """CPU milliseconds a flight, `call` on each record in turn."""
    start = time.process_time()
    for record in records:
        call(record)
    return (time.process_time() - start) * 1000 / len(records)


def one_by_one(models: dict, records: list[dict], rounds: int) -> dict[str, dict]:
    """Per recipe, the CPU ms to score and to explain one flight in each round; the recipes
    take turns within a round, so a busy spell touches them alike."""
    times: dict[str, dict[str, list[float]]] = {n: {"score": [], "explain": []} for n in models}
    for _ in range(rounds):
        for name, model in models.items():
            times[name]["score"].append(cpu_ms(model.predict_one, records))
            times[name]["explain"].append(cpu_ms(model.explain_one, records))
    return times


def row(recipe: tuple[int, int, int], model: FlightDelayModel, splits: dict, cfg: Config) -> dict:
    metrics, _ = score(model, splits, cfg.split.served_lead_hours)
    months = [v for k, v in metrics.items() if k.startswith("test_roc_auc_month_")]
    return {
        "num_leaves": recipe[0],
        "max_depth": recipe[1],
        "min_child_samples": recipe[2],
        "trees": model.estimator.booster.num_trees(),
        "validation_roc_auc": metrics["validation_roc_auc"],
        "test_roc_auc": metrics["test_roc_auc"],
        "worst_month": min(months),
        "test_log_loss": metrics["test_log_loss"],
        "test_roc_auc_lead_24h": metrics["test_roc_auc_lead_24h"],
    }


def table(rows: list[dict]) -> str:
    head = "leaves | max depth | rows a leaf | trees | July 2 h | test 2 h | worst month"
    head += " | log loss 2 h | 24 h | score ms | explain ms"
    lines = [head]
    for r in rows:
        cells = [str(r[k]) for k in ("num_leaves", "max_depth", "min_child_samples", "trees")]
        cells += [f"{r[k]:.4f}" for k in ("validation_roc_auc", "test_roc_auc", "worst_month")]
        cells += [f"{r[k]:.4f}" for k in ("test_log_loss", "test_roc_auc_lead_24h")]
        cells += [f"{min(r[k]):.2f}–{max(r[k]):.2f}" for k in ("score_ms", "explain_ms")]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    setup_logging()
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    splits = {name: load_processed(paths, name) for name in (*SPLITS, "planes")}
    test = splits["test"]
    served = test[test["lead_hours"] == cfg.split.served_lead_hours]
    sample = served.sample(args.flights, random_state=cfg.seed)
    records = request_records(sample)
    models, rows = {}, []
    for recipe in RECIPES:
        start = time.perf_counter()
        name = "/".join(map(str, recipe))
        models[name] = fitted(recipe, splits, cfg)
        rows.append(row(recipe, models[name], splits, cfg))
        log.info("%s: %s (%.0f s)", name, rows[-1], time.perf_counter() - start)
    times = one_by_one(models, records, args.rounds)
    for r, name in zip(rows, models, strict=True):
        r["score_ms"], r["explain_ms"] = times[name]["score"], times[name]["explain"]
    print(table(rows))
    report = {"config": cfg.name, "flights_timed": args.flights, "rounds": args.rounds}
    report |= {"load_at_end": [round(x, 2) for x in os.getloadavg()], "recipes": rows}
    write_json(paths.reports / "recipe_experiment.json", report)
    log.info("wrote %s", paths.reports / "recipe_experiment.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
