"""Append-only prediction log under data/predictions/, written off the request path.

Records are queued in memory and a background thread appends them as JSON lines every
`flush_seconds`; `close()` writes whatever is left, so a graceful shutdown loses nothing.
The drift stage reads these files (src/drift.py: read_prediction_log).
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("app.prediction_log")


class PredictionLogger:
    def __init__(self, folder: Path, flush_seconds: float = 1.0):
        self.folder = folder
        self.flush_seconds = flush_seconds
        self._pending: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def log(self, records: list[dict]) -> None:
        with self._lock:
            self._pending.extend(records)

    def flush(self) -> int:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True)
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        lines = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in batch)
        try:
            with open(self.folder / f"predictions-{day}.jsonl", "a") as fh:
                fh.write(lines)
        except OSError:
            log.exception(
                "could not write %d predictions; keeping them for the next flush", len(batch)
            )
            with self._lock:
                self._pending[:0] = batch
            return 0
        return len(batch)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()
