"""Data drift, prediction drift and performance of one batch against the training
reference (Evidently for the drift, the champion's own out-of-sample figures for quality):
frames and a model in, an Evidently snapshot and a summary dict out; `record_check` saves
them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from src.common.config import Config, Drift, Monitor
from src.common.errors import PipelineError
from src.common.io import write_atomic
from src.common.schema import CATEGORICAL_FEATURES, PREDICTION, TARGET
from src.model.evaluate import binary_metrics
from src.model.features import build_features, decode_categories, request_columns
from src.model.model import FlightDelayModel

log = logging.getLogger(__name__)


def feature_frame(df: pd.DataFrame, model: FlightDelayModel) -> pd.DataFrame:
    """The model's own features (readable categories) plus its score for each row: the
    logged score when the batch has one (the prediction log), else the model's."""
    cols = request_columns(df)
    X = build_features(cols, model.state)
    out = pd.DataFrame(X, columns=list(model.features)).assign(**decode_categories(X, model.state))
    score = df[PREDICTION] if PREDICTION in df else model.predict_proba(cols)
    out[PREDICTION] = np.asarray(score, dtype=float)
    return out


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, rule: Drift):
    from evidently import DataDefinition, Dataset, Report  # a slow import: only here
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    missing = [c for c in rule.columns if c not in current]
    if missing:
        raise PipelineError(f"drift.columns {missing}: not among the model's features")
    categorical = [c for c in current.columns if c in CATEGORICAL_FEATURES]
    definition = DataDefinition(
        numerical_columns=[c for c in current.columns if c not in categorical],
        categorical_columns=categorical,
    )
    preset = DataDriftPreset(**rule.model_dump(exclude={"current_months"}))  # the rule's fields
    report = Report([preset, ValueDrift(column=PREDICTION, method=rule.num_method)])
    snapshot = report.run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    return snapshot, drift_summary(snapshot.dict(), rule)


def drift_summary(result: dict, rule: Drift) -> dict:
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


def quality(batch: pd.DataFrame, scores: pd.Series) -> dict | None:
    """Model quality on the batch when labels are present (both classes)."""
    if TARGET not in batch or batch[TARGET].nunique() < 2:
        return None
    return binary_metrics(batch[TARGET].to_numpy(), scores.to_numpy())


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
    if q["ece"] > rule.max_calibration_error:  # the gate's ECE (src/model/evaluate.py)
        alerts.append(
            f"calibration: ECE {q['ece']:.4f} > {rule.max_calibration_error} (mean prediction "
            f"{q['mean_prediction']:.3f} vs delay rate {q['base_rate']:.3f})"
        )
    return alerts


def check_batch(champion, reference: pd.DataFrame, batch: pd.DataFrame, cfg: Config):
    """Data drift, prediction drift and (with labels) performance of `champion` (a served
    model: src/serving/loader.py `LoadedModel`) on one batch against the `reference` rows,
    in memory; returns (Evidently snapshot, summary)."""
    model = champion.model
    reference, current = feature_frame(reference, model), feature_frame(batch, model)
    log.info("running Evidently on %d columns, %d rows", len(cfg.drift.columns), len(current))
    snapshot, summary = drift_report(reference, current, cfg.drift)
    q = quality(batch, current[PREDICTION])
    baseline = baseline_figures(champion.metadata.get("metrics", {}))
    perf = performance_alerts(q, baseline, cfg.monitor)
    alerts = (["drift"] if summary["drift_detected"] else []) + (["performance"] if perf else [])
    summary |= {
        "model": f"{champion.name} v{champion.version}",
        "rows": len(current),
        "reference_rows": len(reference),
        "quality": q,
        "performance_alerts": perf,
        "alerts": alerts,  # what fired: "drift", "performance"
        "alert": bool(alerts),
    }
    return snapshot, summary


def record_check(snapshot, summary: dict, report: Path, history: Path) -> None:
    """The check's HTML report, and its row in the drift history: the history is rewritten
    atomically, so a crash never truncates it."""
    write_atomic(report, lambda p: snapshot.save_html(str(p)))
    old = history.read_text() if history.is_file() else ""
    line = pd.DataFrame([history_row(summary)]).to_csv(index=False, header=not old)
    write_atomic(history, lambda p: p.write_text(old + line))


def history_row(summary: dict) -> dict:
    q = summary["quality"] or {}
    keys = ("created_at", "batch", "model", "rows", "drift_share", "drift_detected")
    row = {key: summary[key] for key in (*keys, "prediction_drift")}
    row |= {"performance_alert": bool(summary["performance_alerts"]), "alert": summary["alert"]}
    return row | {key: q.get(key) for key in ("roc_auc", "log_loss", "base_rate")}


def one_line(summary: dict) -> str:
    """The summary as the one line the drift stage prints (cron mails it)."""
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
