"""The files the registry and the monitoring cycle write under reports/ (FD_REPORTS_DIR),
read as they are: None when a file is not there yet. Never the model itself."""

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
                "drift share": round(float(m.get("drift_share") or 0.0), 2),
                "alerts": ", ".join(m.get("alerts") or []) or "–",
                "decision": f"{m.get('decision')} → v{m.get('champion_after')}",
            }
        )
    return rows


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
