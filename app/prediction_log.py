"""Append-only prediction log under data/predictions/, written off the request path.

A request only appends one tuple to an in-memory queue; a background thread turns the
queue into JSON lines every `flush_seconds`, and `close()` writes whatever is left, so a
graceful shutdown loses nothing. Each process writes its own file
(`predictions-<day>-<pid>.jsonl`), so gunicorn workers never interleave lines.
The drift stage reads these files (src/drift.py: read_prediction_log).
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from src.common.schema import PREDICTION, REQUEST_FIELDS

log = logging.getLogger("app.prediction_log")


KEYS = ("request_id", "logged_at", "model_name", "model_version", *REQUEST_FIELDS, PREDICTION)


def log_lines(entry: tuple) -> bytes:
    """One JSON line per flight: request id, time, model, the input fields, probability."""
    *head, cols, proba = entry
    head = tuple(head)
    rows = zip(
        *(cols[f] for f in REQUEST_FIELDS), np.asarray(proba, dtype=float).tolist(), strict=True
    )
    return b"".join(
        orjson.dumps(dict(zip(KEYS, head + values, strict=True)), option=orjson.OPT_APPEND_NEWLINE)
        for values in rows
    )


class PredictionLogger:
    def __init__(self, folder: Path, flush_seconds: float = 1.0):
        self.folder = folder
        self.flush_seconds = flush_seconds
        self._pending: list[tuple] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def log(self, request_id: str, model, cols: dict, proba: np.ndarray | list[float]) -> None:
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
            lines = b"".join(log_lines(entry) for entry in batch)
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
