"""The prediction log under data/predictions/: written by the API, read back by the drift
stage and the outcome join. One JSON line per request: request id, time, model name and
version, the flights' fields (API_REQUEST: the model's fields and the optional flight
number) as columns, their probabilities and, while a challenger is set, the challenger's
version and probabilities. Columns keep a 1000-flight batch to one orjson call.

A request only appends an `Entry` to an in-memory queue; a background thread writes the
queue every `flush_seconds`, and `close()` writes what is left, so a graceful shutdown loses
nothing. The queue holds the flights' values as Python objects until then, so the interval
bounds that memory under load: `make bench` measured 188 MiB per worker with 1 s (commit
89d9db6) and 136 MiB with 0.2 s (fada5e8), the same otherwise. Each process writes its own
file (`predictions-<day>-<pid>-<start>.jsonl`), so gunicorn workers never interleave lines,
and a worker restarted under a killed one's pid never appends to the killed one's torn
last line (which read_log skips only as the last line of a file).

The challenger (shadow) is scored here, in the flush thread, off the request path: all the
flights queued with one challenger in one `predict_proba` call. A failure there is logged
and the lines are written without the challenger's scores.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import orjson

from src.common.errors import PipelineError
from src.common.schema import API_REQUEST_FIELDS, FLIGHT_NUMBER, PREDICTION, REQUEST_FIELDS
from src.serving.loader import CHALLENGER, CHAMPION

if TYPE_CHECKING:
    import pandas as pd

    from src.model.features import Columns
    from src.serving.loader import LoadedModel

log = logging.getLogger(__name__)
META = ("request_id", "logged_at", "model_name", "model_version")
SHADOW_VERSION, SHADOW_PROBABILITY = "shadow_version", "shadow_probability"
# read_log's columns, one row per flight.
COLUMNS = (*META, *API_REQUEST_FIELDS, PREDICTION, SHADOW_VERSION, SHADOW_PROBABILITY)
# on_scores(role, version, probabilities): told of every score once, at flush.
ScoresCallback = Callable[[str, str, np.ndarray], None]
Probabilities = np.ndarray | list[float]  # the champion's, as the service has them


class Entry(NamedTuple):
    """One request as queued. `shadow` is the challenger the service held when the request
    was logged (read once): a swap during a flush cannot mix two challengers in a line."""

    request_id: str
    logged_at: str
    model_name: str
    model_version: str
    flights: Columns  # API_REQUEST field -> values
    proba: Probabilities  # the champion's probabilities
    shadow: LoadedModel | None


class ShadowScores(NamedTuple):
    version: str
    proba: np.ndarray


def log_line(entry: Entry, shadow: ShadowScores | None) -> bytes:
    """One request's line: META, the flights (columns), their probabilities, and the
    challenger's version and probabilities when it scored them."""
    record = {key: getattr(entry, key) for key in META}
    # Contiguous: orjson writes no strided view (the logistic model's column of two).
    record |= {"flights": entry.flights, PREDICTION: np.ascontiguousarray(entry.proba, float)}
    if shadow is not None:
        record |= {SHADOW_VERSION: shadow.version, SHADOW_PROBABILITY: shadow.proba}
    return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)


def concatenated(requests: list[Columns]) -> dict[str, list[Any]]:
    """The model's input columns (REQUEST fields) of several requests, one after another."""
    return {f: list(chain.from_iterable(r[f] for r in requests)) for f in REQUEST_FIELDS}


def shadow_scores(batch: list[Entry]) -> list[ShadowScores | None]:
    """Each request's challenger scores, or None (no challenger, or it failed). The requests
    logged with one challenger are scored in one call: called per request, the call's own
    overhead would cost more than the scoring."""
    by_model: dict[int, list[int]] = {}  # id(challenger) -> its requests' positions
    for i, entry in enumerate(batch):
        if entry.shadow is not None:
            by_model.setdefault(id(entry.shadow), []).append(i)
    scores: list[ShadowScores | None] = [None] * len(batch)
    for rows in by_model.values():
        shadow = batch[rows[0]].shadow
        assert shadow is not None  # by_model holds only requests logged with a challenger
        try:
            flights = concatenated([batch[i].flights for i in rows])
            proba = np.ascontiguousarray(shadow.model.predict_proba(flights), float)
        except Exception:  # the champion's lines are written all the same
            log.exception("challenger v%s failed on %d requests", shadow.version, len(rows))
            continue
        ends = np.cumsum([len(batch[i].proba) for i in rows])
        for i, part in zip(rows, np.split(proba, ends[:-1]), strict=True):
            scores[i] = ShadowScores(shadow.version, part)
    return scores


class PredictionLogger:
    def __init__(
        self,
        folder: Path,
        flush_seconds: float = 0.2,
        on_scores: ScoresCallback | None = None,
    ):
        self.folder = folder
        self.flush_seconds = flush_seconds
        self.on_scores = on_scores
        self._file_tag = f"{os.getpid()}-{datetime.now(UTC):%H%M%S%f}"  # this process's files
        self._pending: list[Entry] = []
        self._unwritten: list[tuple[Entry, ShadowScores | None]] = []  # a failed write's
        self._lock = threading.Lock()  # guards _pending (requests append, flush takes)
        self._flushing = threading.Lock()  # one flush at a time (close() flushes too)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def log(
        self,
        request_id: str,
        model_name: str,
        model_version: str,
        cols: Columns,
        proba: Probabilities,
        shadow: LoadedModel | None = None,
    ) -> None:
        """Queue one request's predictions; `cols` maps each API_REQUEST field to its
        values; `shadow`, the challenger to score them with at flush."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        entry = Entry(request_id, now, model_name, model_version, cols, proba, shadow)
        with self._lock:
            self._pending.append(entry)

    def flush(self) -> int:
        """Score the queued requests with their challenger, hand every score to `on_scores`,
        and write one line per request; on a write error, keep the lines not written (scored
        and counted already) for the next flush. Returns the number of requests written."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, []
            scored = list(zip(batch, shadow_scores(batch), strict=True))
            self._observe(scored)
            todo, self._unwritten = self._unwritten + scored, []
            written = self._write(todo) if todo else 0
            self._unwritten = todo[written:]
            return written

    def _write(self, todo: list[tuple[Entry, ShadowScores | None]]) -> int:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        written = 0
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # Unbuffered, one line per write: a failed write loses nothing already counted,
            # and no second's worth of lines is ever joined into one large buffer.
            path = self.folder / f"predictions-{day}-{self._file_tag}.jsonl"
            with open(path, "ab", buffering=0) as fh:
                for entry, shadow in todo:
                    fh.write(log_line(entry, shadow))
                    written += 1
        except OSError:
            log.exception("could not write %d requests' predictions; retrying", len(todo) - written)
        return written

    def _observe(self, scored: list[tuple[Entry, ShadowScores | None]]) -> None:
        """Every score to `on_scores` once (the API's histograms): one call per role and
        model version, not one per flight."""
        if self.on_scores is None or not scored:
            return
        groups: dict[tuple[str, str], list[Probabilities]] = {}
        for entry, shadow in scored:
            groups.setdefault((CHAMPION, entry.model_version), []).append(entry.proba)
            if shadow is not None:
                groups.setdefault((CHALLENGER, shadow.version), []).append(shadow.proba)
        for (role, version), parts in groups.items():
            try:
                self.on_scores(role, version, np.fromiter(chain.from_iterable(parts), float))
            except Exception:  # metrics must never cost a logged line
                log.exception("could not record the %s v%s scores", role, version)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()


def read_log(folder: Path) -> tuple[pd.DataFrame, int]:
    """(every logged flight as one row of COLUMNS, the number of torn lines skipped).

    A torn line is the last line of a file that does not parse: a worker killed mid-write
    leaves one. It is skipped with a warning naming the file and line; any other line that
    does not parse is an error naming it. Lines logged before the flight number have it
    missing; lines without a challenger, its version and probability."""
    import pandas as pd  # the readers only; API workers never import pandas

    files = sorted(folder.glob("predictions-*.jsonl"))
    if not files:
        raise PipelineError(f"{folder}: no prediction log files (predictions-*.jsonl)")
    columns: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    torn = 0
    for path in files:
        lines = path.read_bytes().splitlines()
        for number, line in enumerate(lines, 1):
            try:
                rows = parse_line(line)
            except ValueError as exc:
                if number < len(lines):
                    raise PipelineError(
                        f"{path}:{number}: not a prediction log line ({exc})"
                    ) from None
                log.warning("%s:%d: torn last line skipped (%s)", path, number, exc)
                torn += 1
                continue
            for name, values in rows.items():
                columns[name] += values
    frame = pd.DataFrame(columns)
    # Whole numbers with gaps: kept as integers, so a join on OUTCOME_KEY matches the data's.
    frame[FLIGHT_NUMBER.name] = frame[FLIGHT_NUMBER.name].astype("Int64")
    return frame, torn


def parse_line(line: bytes) -> dict[str, list[Any]]:
    """One log line's flights as COLUMNS; ValueError saying what is wrong with it."""
    try:
        record = orjson.loads(line)
        proba, flights = record[PREDICTION], record["flights"]
        n = len(proba)
        missing = [None] * n
        rows = {key: [record[key]] * n for key in META}
        rows |= {name: flights[name] for name in REQUEST_FIELDS}
        rows[FLIGHT_NUMBER.name] = flights.get(FLIGHT_NUMBER.name, missing)
        rows[PREDICTION] = proba
        rows[SHADOW_VERSION] = [record.get(SHADOW_VERSION)] * n
        rows[SHADOW_PROBABILITY] = record.get(SHADOW_PROBABILITY, missing)
        uneven = [name for name, values in rows.items() if len(values) != n]
    except (KeyError, TypeError, AttributeError) as exc:  # not the shape of a log line
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    if uneven:
        raise ValueError(f"{uneven}: not {n} values each, as many as {PREDICTION}")
    return rows
