"""Append-only prediction log under data/predictions/, written off the request path.

One JSON line per request (format: src/common/predictions.py): request id, time, model name
and version, the flights' input fields as columns, and their probabilities. Columns keep a
1000-flight batch to one cheap orjson call (per-flight lines cost ~5 ms, a third of a batch).

A request only appends a tuple to an in-memory queue; a background thread writes the
queue every `flush_seconds`, and `close()` writes what is left, so a graceful shutdown
loses nothing. Each process writes its own file (`predictions-<day>-<pid>.jsonl`), so
gunicorn workers never interleave lines.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from src.common.predictions import encode

log = logging.getLogger("app.prediction_log")


class PredictionLogger:
    def __init__(self, folder: Path, flush_seconds: float = 1.0):
        self.folder = folder
        self.flush_seconds = flush_seconds
        self._pending: list[tuple] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def log(self, request_id: str, model, cols: dict, proba) -> None:
        """Queue one request's predictions; `cols` maps each REQUEST field to its values."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        with self._lock:
            self._pending.append((request_id, now, model.name, model.version, cols, proba))

    def flush(self) -> int:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        try:
            lines = b"".join(encode(entry) for entry in batch)
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.folder / f"predictions-{day}-{os.getpid()}.jsonl", "ab") as fh:
                fh.write(lines)
        except OSError:
            log.exception("could not write %d requests' predictions; retrying", len(batch))
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
