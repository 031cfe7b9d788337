"""Stage 6: data and prediction drift of a batch against the training reference (Evidently).

    python -m src.drift [--month M ...] [--predictions [DIR]] [--config configs/default.yml]

The batch is a month of processed data (labels too, so quality is reported) or the API's
prediction log. Writes reports/drift/<batch>/{report.html,summary.json}, appends a row to
reports/drift/history.csv and prints a one-line summary.
With labels it also checks quality against the champion's validation figures (configs:
`monitor:`). Exit codes (for cron): 0 healthy, 1 alert (drift or performance), 2 error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from src.champion import load_champion
from src.common.config import Config, Drift, Monitor, load_config
from src.common.errors import PipelineError
from src.common.io import read_json, write_atomic, write_json
from src.common.logs import setup_logging
from src.common.paths import DEFAULT_CONFIG, Paths, get_paths
from src.common.predictions import read_log
from src.common.schema import (
    CATEGORICAL_FEATURES,
    FEATURES,
    NUMERIC_FEATURES,
    PREDICTION,
    REQUEST_FIELDS,
    TARGET,
)
from src.evaluate import binary_metrics
from src.features import build_features, decode_categories

log = logging.getLogger("drift")
EXIT_OK, EXIT_ALERT, EXIT_ERROR = 0, 1, 2
SPLIT_FILES = ("train", "validation", "test")


# ---------------------------------------------------------------- pure functions
def feature_frame(df: pd.DataFrame, model) -> pd.DataFrame:
    """The model's own features (readable categories) plus its score for each row."""
    cols = {c: df[c].to_numpy() for c in REQUEST_FIELDS}
    X = build_features(cols, model.state)
    out = pd.DataFrame(X, columns=list(FEATURES))
    for name, labels in decode_categories(X, model.state).items():
        out[name] = labels
    score = df[PREDICTION] if PREDICTION in df else model.predict_proba(cols)
    out[PREDICTION] = np.asarray(score, dtype=float)
    return out


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, rule: Drift):
    """Run Evidently with the configured rule; returns (snapshot, summary dict)."""
    from evidently import DataDefinition, Dataset, Report  # 5-10 s import: only here
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[*NUMERIC_FEATURES, PREDICTION],
        categorical_columns=list(CATEGORICAL_FEATURES),
    )
    report = Report(
        [
            DataDriftPreset(
                columns=rule.columns,
                threshold=rule.threshold,
                drift_share=rule.drift_share,
                num_method=rule.num_method,
                cat_method=rule.cat_method,
            ),
            ValueDrift(column=PREDICTION, method=rule.num_method),
        ]
    )
    snapshot = report.run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    return snapshot, summarize(snapshot.dict(), rule)


def summarize(result: dict, rule: Drift) -> dict:
    """Column scores, drifted share and verdict from Evidently's result dict."""
    scores, prediction_drift = {}, None
    for metric in result["metrics"]:
        cfg = metric["config"]
        if cfg["type"].endswith("ValueDrift"):
            if cfg["column"] == PREDICTION:
                prediction_drift = float(metric["value"])
            elif cfg["column"] in rule.columns:
                scores[cfg["column"]] = float(metric["value"])
    drifted = sorted(c for c, v in scores.items() if v >= rule.threshold)
    share = len(drifted) / len(rule.columns)
    return {
        "drift_detected": share >= rule.drift_share,
        "drift_share": share,
        "drifted_columns": drifted,
        "column_scores": scores,
        "prediction_drift": prediction_drift,
        "rule": rule.model_dump(exclude={"current_months"}),
    }


def quality(current: pd.DataFrame, scores: pd.Series) -> dict | None:
    """Model quality on the batch when labels are present."""
    if TARGET not in current or current[TARGET].nunique() < 2:
        return None
    return binary_metrics(current[TARGET].to_numpy(), scores.to_numpy())


def baseline_figures(metrics: dict) -> dict:
    """The champion's out-of-sample figures: its validation metrics, or for a promoted
    challenger (trained through the latest labels) its metrics on the gate window."""
    return {
        key: metrics.get(f"validation_{key}", metrics.get(f"gate_window_{key}"))
        for key in ("roc_auc", "log_loss")
    }


def performance_alerts(q: dict | None, baseline: dict, rule: Monitor) -> list[str]:
    """Alarms on a labelled batch against the champion's baseline figures."""
    if q is None:
        return []
    alerts = []
    floor = (baseline.get("roc_auc") or 0) - rule.max_auc_drop
    if q["roc_auc"] < floor:
        alerts.append(f"ROC AUC {q['roc_auc']:.4f} < {floor:.4f} (baseline - {rule.max_auc_drop})")
    ceiling = (baseline.get("log_loss") or float("inf")) + rule.max_log_loss_rise
    if q["log_loss"] > ceiling:
        alerts.append(f"log loss {q['log_loss']:.4f} > {ceiling:.4f}")
    gap = q["mean_prediction"] - q["base_rate"]
    if abs(gap) > rule.max_calibration_gap:
        alerts.append(
            f"calibration: mean prediction {q['mean_prediction']:.3f} vs delay rate "
            f"{q['base_rate']:.3f} (gap {gap:+.3f}, limit {rule.max_calibration_gap})"
        )
    return alerts


def check_batch(model, reference: pd.DataFrame, batch: pd.DataFrame, cfg: Config, metrics: dict):
    """Data drift, prediction drift and (with labels) performance for one batch, in memory.
    `reference` is a feature_frame, `metrics` the champion run's metrics; returns
    (Evidently snapshot, summary)."""
    current = feature_frame(batch, model)
    log.info(
        "running Evidently on %d columns, %d current rows", len(cfg.drift.columns), len(current)
    )
    snapshot, summary = drift_report(reference, current, cfg.drift)
    q = quality(batch, current[PREDICTION])
    perf = performance_alerts(q, baseline_figures(metrics), cfg.monitor)
    triggers = (["drift"] if summary["drift_detected"] else []) + (["performance"] if perf else [])
    summary |= {
        "rows": len(current),
        "reference_rows": len(reference),
        "quality": q,
        "performance_alerts": perf,
        "alert": bool(triggers),
        "retrain": any(t in cfg.monitor.retrain_on for t in triggers),
    }
    return snapshot, summary


# ---------------------------------------------------------------- I/O
def read_months(paths: Paths, months: list[int]) -> pd.DataFrame:
    frames = []
    for name in SPLIT_FILES:
        path = paths.processed / f"{name}.parquet"
        if not path.is_file():
            raise PipelineError(f"{path}: not found; run `python -m src.preprocess` first")
        df = pd.read_parquet(path)
        frames.append(df[df["month"].isin(months)])
    batch = pd.concat(frames, ignore_index=True)
    if batch.empty:
        raise PipelineError(f"{paths.processed}: no processed rows for months {months}")
    return batch


def append_history(path: Path, row: dict) -> None:
    """One row per drift run; rewritten atomically so a crash never truncates history."""
    old = path.read_text() if path.is_file() else ""
    line = pd.DataFrame([row]).to_csv(index=False, header=not old)
    write_atomic(path, lambda p: p.write_text(old + line))


def run(cfg: Config, paths: Paths, months: list[int] | None, predictions: Path | None) -> dict:
    model = load_champion(cfg, paths)
    if predictions is not None:
        batch, label = read_log(predictions), "predictions"
    else:
        months = months or cfg.drift.current_months
        batch, label = read_months(paths, months), "2013-" + "-".join(f"{m:02d}" for m in months)
    ref_path = paths.processed / "reference.parquet"
    if not ref_path.is_file():
        raise PipelineError(
            f"{ref_path}: drift reference not found; run `python -m src.preprocess`"
        )
    reference = feature_frame(pd.read_parquet(ref_path), model.model)
    log.info("features for %d reference and %d %s rows", len(reference), len(batch), label)
    metrics = model.metadata.get("metrics", {})
    snapshot, summary = check_batch(model.model, reference, batch, cfg, metrics)
    summary |= {
        "batch": label,
        "model": f"{model.name} v{model.version}",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if predictions is None:
        rates = read_json(paths.processed / "manifest.json")["stats"]["cancellation_rate_by_month"]
        summary["cancellation_rate"] = {m: rates.get(str(m)) for m in months}
    out = paths.drift_reports / label
    write_atomic(out / "report.html", lambda p: snapshot.save_html(str(p)))
    write_json(out / "summary.json", summary)
    append_history(paths.drift_reports / "history.csv", history_row(summary))
    return summary


def history_row(summary: dict) -> dict:
    q = summary["quality"] or {}
    return {
        "created_at": summary["created_at"],
        "batch": summary["batch"],
        "model": summary["model"],
        "rows": summary["rows"],
        "drift_share": summary["drift_share"],
        "drift_detected": summary["drift_detected"],
        "prediction_drift": summary["prediction_drift"],
        "performance_alert": bool(summary["performance_alerts"]),
        "alert": summary["alert"],
        "roc_auc": q.get("roc_auc"),
        "log_loss": q.get("log_loss"),
        "base_rate": q.get("base_rate"),
    }


def one_line(summary: dict) -> str:
    verdict = "DRIFT" if summary["drift_detected"] else "no drift"
    if summary["performance_alerts"]:
        verdict += " + PERFORMANCE: " + "; ".join(summary["performance_alerts"])
    text = (
        f"{summary['batch']}: {verdict}: {len(summary['drifted_columns'])}/"
        f"{len(summary['column_scores'])} columns drifted (share {summary['drift_share']:.2f}, "
        f"alert at {summary['rule']['drift_share']}) {summary['drifted_columns']}; "
        f"prediction drift {summary['prediction_drift']:.3f}"
    )
    if summary["quality"]:
        text += f"; ROC AUC {summary['quality']['roc_auc']:.3f}"
    return text


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.drift", description=__doc__.split("\n")[0])
    p.add_argument("--config", default=DEFAULT_CONFIG, help="pipeline config YAML")
    p.add_argument("--month", type=int, nargs="+", help="months of 2013 to check (default: config)")
    p.add_argument(
        "--predictions",
        nargs="?",
        const="",
        help="check the API's prediction log instead (default folder: data/predictions)",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    setup_logging()
    args = parse_args(argv)
    try:
        cfg, paths = load_config(args.config), get_paths()
        preds = None
        if args.predictions is not None:
            preds = Path(args.predictions) if args.predictions else paths.predictions
        summary = run(cfg, paths, args.month, preds)
    except PipelineError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        return EXIT_ERROR
    except Exception:  # cron must see "error", not a traceback's exit code 1 (= drift)
        log.exception("drift check failed")
        return EXIT_ERROR
    print(one_line(summary), file=sys.stdout)
    return EXIT_ALERT if summary["alert"] else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
