"""The prediction log under data/predictions/: written by the API, read back by the drift
stage and the outcome join. One JSON line per request: request id, time, model name and
version, a sequence number (`seq`), the flights' fields (API_REQUEST: the model's fields and
the optional flight number) as columns and their probabilities. Columns keep a 1000-flight
batch to one orjson call.

A request's line is written before its answer leaves: `log()` appends it with one write()
to the process's file, so a worker killed mid-load loses no answered prediction. A write
that fails raises (the request fails: no answer goes out that is not logged) and is cut back,
so no partial line is left for the next one to follow. Each process writes its own file
(`predictions-<day>-<pid>-<start>.jsonl`), so gunicorn workers never interleave lines, and a
worker restarted under a killed one's pid never appends to the killed one's torn last line
(which read_log skips only as the last line of a file).

The challenger (shadow) is scored off the request path, in a background thread every
`flush_seconds`: all the flights logged with one challenger in one `predict_proba` call.
Its scores go in a line of their own, in the file of the request's line and after it
(`seq`, `shadow_version`, `shadow_probability`); read_log puts them on the request's rows.
A failure there is logged and costs the challenger's scores only. The same thread hands
every score to `on_scores` (the API's histograms); `close()` runs it a last time, and a
killed worker loses only the challenger's scores of its last `flush_seconds`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import chain, count
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import orjson

from src.common.errors import PipelineError
from src.common.schema import (
    API_REQUEST_FIELDS,
    FLIGHT_NUMBER,
    PREDICTION,
    REQUEST_FIELDS,
    STORE_FIELDS,
)
from src.serving.loader import CHALLENGER, CHAMPION

if TYPE_CHECKING:
    import pandas as pd

    from src.model.features import Columns
    from src.serving.loader import LoadedModel

log = logging.getLogger(__name__)
META = ("request_id", "logged_at", "model_name", "model_version")
# Fields added after lines were first logged: an older line has none of them.
OPTIONAL_SINCE = (FLIGHT_NUMBER.name, *(c.name for c in STORE_FIELDS))
SHADOW_VERSION, SHADOW_PROBABILITY = "shadow_version", "shadow_probability"
# read_log's columns, one row per flight.
COLUMNS = (*META, *API_REQUEST_FIELDS, PREDICTION, SHADOW_VERSION, SHADOW_PROBABILITY)
# on_scores(role, version, probabilities): told of every score once, at flush.
ScoresCallback = Callable[[str, str, np.ndarray], None]
Probabilities = np.ndarray | list[float]  # the champion's, as the service has them


class Logged(NamedTuple):
    """A request whose line is written, waiting for the flush to score it with its challenger
    (the one the service held when it was logged, read once: a swap during a flush cannot
    mix two challengers in a request) and to hand its scores to `on_scores`."""

    path: Path  # the file its line is in
    seq: int
    model_version: str
    proba: Probabilities  # the champion's probabilities
    flights: Columns | None  # kept while a challenger is to score them
    shadow: LoadedModel | None


class ShadowScores(NamedTuple):
    version: str
    proba: np.ndarray


def dumps(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)


def append(fd: int, line: bytes) -> None:
    """The whole line at the end of the file, or OSError and nothing: a short write (a full
    disk) is cut back, so no partial line is left for the next one to follow."""
    written = os.write(fd, line)
    if written < len(line):
        os.ftruncate(fd, os.fstat(fd).st_size - written)
        raise OSError(f"short write: {written} of {len(line)} bytes")


def concatenated(requests: list[Columns]) -> dict[str, list[Any]]:
    """The model's input columns (REQUEST fields) of several requests, one after another."""
    return {f: list(chain.from_iterable(r[f] for r in requests)) for f in REQUEST_FIELDS}


def shadow_scores(batch: list[Logged]) -> list[ShadowScores | None]:
    """Each request's challenger scores, or None (no challenger, or it failed). The requests
    logged with one challenger are scored in one call: called per request, the call's own
    overhead would cost more than the scoring."""
    by_model: dict[int, list[Logged]] = {}  # id(challenger) -> its requests
    for logged in batch:
        if logged.shadow is not None:
            by_model.setdefault(id(logged.shadow), []).append(logged)
    scores: dict[int, ShadowScores] = {}  # seq -> the challenger's scores
    for requests in by_model.values():
        shadow = requests[0].shadow
        assert shadow is not None  # by_model holds only requests logged with a challenger
        try:
            flights = concatenated([r.flights for r in requests if r.flights is not None])
            proba = np.ascontiguousarray(shadow.model.predict_proba(flights), float)
        except Exception:  # the champion's lines are written already
            log.exception("challenger v%s failed on %d requests", shadow.version, len(requests))
            continue
        ends = np.cumsum([len(r.proba) for r in requests])
        for r, part in zip(requests, np.split(proba, ends[:-1]), strict=True):
            scores[r.seq] = ShadowScores(shadow.version, part)
    return [scores.get(logged.seq) for logged in batch]


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
        self._seq = count()  # thread-safe: next() holds the GIL
        self._path: Path | None = None  # the file open to append (_fd)
        self._fd = -1
        self._pending: list[Logged] = []
        self._lock = threading.Lock()  # guards the file and _pending
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
        """Write one request's line now (OSError if it cannot be written); `cols` maps each
        API_REQUEST field to its values; `shadow`, the challenger to score them with at the
        next flush."""
        now, seq = datetime.now(UTC), next(self._seq)
        path = self.folder / f"predictions-{now:%Y-%m-%d}-{self._file_tag}.jsonl"
        meta = (request_id, now.isoformat(timespec="milliseconds"), model_name, model_version)
        record: dict[str, Any] = dict(zip(META, meta, strict=True))
        # Contiguous: orjson writes no strided view (the logistic model's column of two).
        record |= {"seq": seq, "flights": cols, PREDICTION: np.ascontiguousarray(proba, float)}
        line = dumps(record)
        with self._lock:
            append(self._open(path), line)
            flights = None if shadow is None else cols
            self._pending.append(Logged(path, seq, model_version, proba, flights, shadow))

    def _open(self, path: Path) -> int:
        """The file descriptor of `path`, opened to append (under self._lock)."""
        if path != self._path:
            self._close_file()
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._path = path
        return self._fd

    def _close_file(self) -> None:
        if self._path is not None:
            os.close(self._fd)
            self._path = None

    def flush(self) -> int:
        """Score the requests logged since the last flush with their challenger, write the
        challenger's lines and hand every score to `on_scores`. Returns the number of
        requests."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, []
            scores = shadow_scores(batch)
            for logged, shadow in zip(batch, scores, strict=True):
                if shadow is not None:
                    self._write_shadow(logged, shadow)
            self._observe(batch, scores)
            return len(batch)

    def _write_shadow(self, logged: Logged, shadow: ShadowScores) -> None:
        record = {"seq": logged.seq, SHADOW_VERSION: shadow.version}
        line = dumps(record | {SHADOW_PROBABILITY: shadow.proba})
        try:
            with self._lock:
                append(self._open(logged.path), line)
        except OSError:
            log.exception("could not write the challenger's scores of line %d", logged.seq)

    def _observe(self, batch: list[Logged], scores: list[ShadowScores | None]) -> None:
        """Every score to `on_scores` once (the API's histograms): one call per role and
        model version, not one per flight."""
        if self.on_scores is None or not batch:
            return
        groups: dict[tuple[str, str], list[Probabilities]] = {}
        for logged, shadow in zip(batch, scores, strict=True):
            groups.setdefault((CHAMPION, logged.model_version), []).append(logged.proba)
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
        with self._lock:
            self._close_file()


def read_log(folder: Path) -> tuple[pd.DataFrame, int]:
    """(every logged flight as one row of COLUMNS, the number of torn lines skipped).

    A torn line is the last line of a file that does not parse: a worker killed mid-write
    leaves one. It is skipped with a warning naming the file and line; any other line that
    does not parse is an error naming it. Lines logged before the flight number have it
    missing; requests without a challenger's line, its version and probability."""
    import pandas as pd  # the readers only; API workers never import pandas

    files = sorted(folder.glob("predictions-*.jsonl"))
    if not files:
        raise PipelineError(f"{folder}: no prediction log files (predictions-*.jsonl)")
    columns: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    torn = 0
    for path in files:
        lines = path.read_bytes().splitlines()
        requests: dict[int, dict[str, list[Any]]] = {}  # by seq, or by line number (older lines)
        for number, line in enumerate(lines, 1):
            try:
                add_line(requests, number, line)
            except ValueError as exc:
                if number < len(lines):
                    raise PipelineError(
                        f"{path}:{number}: not a prediction log line ({exc})"
                    ) from None
                log.warning("%s:%d: torn last line skipped (%s)", path, number, exc)
                torn += 1
        for rows in requests.values():
            for name, values in rows.items():
                columns[name] += values
    frame = pd.DataFrame(columns)
    # Whole numbers with gaps: kept as integers, so a join on OUTCOME_KEY matches the data's.
    frame[FLIGHT_NUMBER.name] = frame[FLIGHT_NUMBER.name].astype("Int64")
    return frame, torn


def add_line(requests: dict[int, dict[str, list[Any]]], number: int, line: bytes) -> None:
    """A request's line as its flights' COLUMNS into `requests` (under its seq), or a
    challenger's line onto the request it scored; ValueError saying what is wrong."""
    try:
        record = orjson.loads(line)
        if "flights" in record:
            requests[record.get("seq", -number)] = request_rows(record)  # older: no seq
            return
        seq, version, proba = record["seq"], record[SHADOW_VERSION], record[SHADOW_PROBABILITY]
    except (KeyError, TypeError, AttributeError) as exc:  # not the shape of a log line
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    rows = requests.get(seq)
    if rows is None or len(rows[PREDICTION]) != len(proba):
        raise ValueError(f"challenger scores that match no request line above (seq {seq})")
    rows[SHADOW_VERSION], rows[SHADOW_PROBABILITY] = [version] * len(proba), proba


def request_rows(record: dict[str, Any]) -> dict[str, list[Any]]:
    """A request's line as COLUMNS, one value per flight; ValueError if they are uneven.
    Lines logged before the challenger had lines of its own carry its scores; lines logged
    before an optional field existed (the flight number, the feature store's fields) read
    it as missing."""
    proba, flights = record[PREDICTION], record["flights"]
    n = len(proba)
    missing = [None] * n
    rows = {key: [record[key]] * n for key in META}
    rows |= {name: flights[name] for name in REQUEST_FIELDS if name not in OPTIONAL_SINCE}
    rows |= {name: flights.get(name, missing) for name in OPTIONAL_SINCE}
    rows[PREDICTION] = proba
    rows[SHADOW_VERSION] = [record.get(SHADOW_VERSION)] * n
    rows[SHADOW_PROBABILITY] = record.get(SHADOW_PROBABILITY, missing)
    uneven = [name for name, values in rows.items() if len(values) != n]
    if uneven:
        raise ValueError(f"{uneven}: not {n} values each, as many as {PREDICTION}")
    return rows
