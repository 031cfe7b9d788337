"""The files the registry and the monitoring cycle write under reports/ (FD_REPORTS_DIR),
read as they are: None when a file is not there yet. Never the model itself.

    loop/decisions.json                 make loop (src/simulate.py month_row)
    drift/history.csv, drift/<batch>/report.html   make drift (src/monitoring/drift.py)
    model_card/<name>.md, .slices.json, .reliability.json   src.register (src/registry/export.py)
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def reports_dir() -> Path:
    return Path(os.environ.get("FD_REPORTS_DIR") or ROOT / "reports")


def loop_decisions(reports: Path | None = None) -> dict[str, Any] | None:
    """reports/loop/decisions.json (`make loop`): {"months": [...], "pooled_oct_dec": {...}}."""
    path = (reports or reports_dir()) / "loop" / "decisions.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    return doc if isinstance(doc, dict) and isinstance(doc.get("months"), list) else None


def loop_rows(decisions: dict[str, Any]) -> list[dict[str, Any]]:
    """One row a month: who served it, the loop's and the frozen model's ROC AUC, the cycle's
    decision at month end."""
    rows = []
    for m in decisions["months"]:
        rows.append(
            {
                "month": f"2013-{int(m['month']):02d}",
                "served by": f"v{m.get('serving_version')}",
                "AUC loop": round(float(m["loop_auc"]), 4),
                "AUC frozen": round(float(m["frozen_auc"]), 4),
                "gap": round(float(m["loop_auc"]) - float(m["frozen_auc"]), 4),
                "ECE loop": rounded(m.get("loop_ece")),
                "ECE frozen": rounded(m.get("frozen_ece")),
                "drift share": round(float(m.get("drift_share") or 0.0), 2),
                "alerts": ", ".join(m.get("alerts") or []) or "–",
                "decision": f"{m.get('decision')} → v{m.get('champion_after')}",
            }
        )
    return rows


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def loop_has_ece(decisions: dict[str, Any]) -> bool:
    """Whether every month holds both ECEs (a decisions.json from before they were recorded
    holds none)."""
    months = decisions["months"]
    return bool(months) and all(
        m.get("loop_ece") is not None and m.get("frozen_ece") is not None for m in months
    )


def drift_history(reports: Path | None = None) -> list[dict[str, str]] | None:
    """reports/drift/history.csv (one row per drift check), or None."""
    path = (reports or reports_dir()) / "drift" / "history.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def model_cards(reports: Path | None = None) -> list[Path]:
    """The model cards src.register wrote (reports/model_card/*.md)."""
    folder = (reports or reports_dir()) / "model_card"
    return sorted(folder.glob("*.md")) if folder.is_dir() else []


def drift_reports(reports: Path | None = None) -> dict[str, Path]:
    """Each checked batch's Evidently report (reports/drift/<batch>/report.html), by batch:
    the latest check of a batch writes over the one before."""
    folder = (reports or reports_dir()) / "drift"
    found = folder.glob("*/report.html") if folder.is_dir() else []
    return {path.parent.name: path for path in sorted(found)}


def card_data(kind: str, name: str, reports: Path | None = None) -> dict[str, Any] | None:
    """A model card's table as JSON beside it (src/registry/export.py): kind "slices" or
    "reliability"; None when absent."""
    path = card_data_path(kind, name, reports)
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    return doc if isinstance(doc, dict) else None


def card_data_path(kind: str, name: str, reports: Path | None = None) -> Path:
    return (reports or reports_dir()) / "model_card" / f"{name}.{kind}.json"


def reliability_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The reliability diagram's points: each bin holding flights, its mean prediction
    against its observed delay rate (on the diagonal when calibrated)."""
    return [
        {
            "bin": f"{b['lower']:.1f}–{b['upper']:.1f}",
            "mean prediction": round(float(b["mean_prediction"]), 4),
            "observed delay rate": round(float(b["observed_rate"]), 4),
            "flights": int(b["rows"]),
        }
        for b in doc.get("bins", [])
        if b.get("rows")
    ]


def slice_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The model card's slice table (src/model/slices.py), one row a slice; "–" where a
    slice holds one class only (no AUC)."""
    rows = []
    for s in doc.get("slices", []):
        auc, low, high = s.get("roc_auc"), s.get("roc_auc_low"), s.get("roc_auc_high")
        interval = "–" if low is None or high is None else f"{low:.4f}–{high:.4f}"
        rows.append(
            {
                "dimension": str(s["dimension"]).replace("_", " "),
                "slice": f"{s['slice']} ({s['members']})" if s.get("members") else s["slice"],
                "flights": int(s["rows"]),
                "delay rate": rounded(s.get("base_rate")),
                "mean prediction": rounded(s.get("mean_prediction")),
                "ROC AUC": rounded(auc),
                "95% interval": interval,
                "log loss": rounded(s.get("log_loss")),
            }
        )
    return rows
