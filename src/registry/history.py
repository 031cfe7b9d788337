"""Append-only history of registry alias moves (register, promote, reject, rollback): MLflow
keeps only where an alias points now; this keeps how it got there, with the gate's evidence,
so `make rollback` knows the previous champion."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

MOVES = ("register", "promote", "rollback")  # events that put a version under the champion alias


def read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_event(path: Path, **event) -> dict:
    entry = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **event}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:  # one short line per event: append is atomic enough here
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
    return entry


def rollback_target(history: list[dict], current: str | None) -> str | None:
    """The champion before `current` (None: @champion unset, the last one recorded),
    skipping versions already rolled back from."""
    chain = [e["version"] for e in history if e["alias"] == "champion" and e["event"] in MOVES]
    rolled_back = {e["previous_version"] for e in history if e["event"] == "rollback"}
    if current in chain:
        chain = chain[: len(chain) - chain[::-1].index(current) - 1]
    earlier = [v for v in chain if v != current and v not in rolled_back]
    return earlier[-1] if earlier else None
