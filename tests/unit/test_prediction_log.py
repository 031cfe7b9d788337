"""The prediction log's writer and reader: what the API logs is what the drift stage reads,
a request's line is on disk before `log()` returns, a failed write raises and leaves no
partial line, and a torn last line (a worker killed mid-write) costs that line only."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from src.common.errors import PipelineError
from src.common.paths import ROOT
from src.common.schema import API_REQUEST_FIELDS, EXAMPLE_FLIGHT, REQUEST_FIELDS, STORE_FIELDS
from src.serving.prediction_log import PredictionLogger, read_log

# The example flight as the API hands it on: every field, None where the caller left one out
# (here the feature store's, but for the lead and one count).
EXAMPLE = {f: EXAMPLE_FLIGHT.get(f) for f in API_REQUEST_FIELDS} | {
    "lead_hours": 2.0,
    "airport_departed_2h": 14.0,
}


def log_requests(logger: PredictionLogger, n: int, fields=API_REQUEST_FIELDS) -> list[str]:
    """Request i: i + 1 copies of the example flight, flight number 100 + i."""
    ids = []
    for i in range(n):
        flight = {**EXAMPLE, "flight": 100 + i}
        cols = {f: [flight[f]] * (i + 1) for f in fields}
        ids.append(f"request-{i}")
        logger.log(ids[-1], "flight-delay", "3", cols, np.full(i + 1, 0.25))
    return ids


STORE_NAMES = tuple(c.name for c in STORE_FIELDS)


def written_log(folder, n: int, fields=API_REQUEST_FIELDS):
    """A log of `n` requests written by the real logger: (its one file, the request ids)."""
    logger = PredictionLogger(folder, flush_seconds=3600)  # flushed by hand only
    ids = log_requests(logger, n, fields)
    assert logger.flush() == n
    logger.close()
    [path] = folder.glob("predictions-*.jsonl")
    return path, ids


def test_logged_requests_read_back_one_row_per_flight(tmp_path):
    _, ids = written_log(tmp_path / "log", 3)
    rows, torn = read_log(tmp_path / "log")
    assert torn == 0 and len(rows) == 1 + 2 + 3
    assert list(rows["request_id"].drop_duplicates()) == ids
    assert (rows["delay_probability"] == 0.25).all() and (rows["model_version"] == "3").all()
    assert rows["wind_gust"].isna().all() and (rows["distance"] == 719).all()
    assert (rows["lead_hours"] == 2.0).all() and rows["plane_last_dep_delay"].isna().all()
    assert list(rows["flight"]) == [100, 101, 101, 102, 102, 102]
    assert rows["shadow_version"].isna().all() and rows["shadow_probability"].isna().all()


def test_lines_logged_before_the_flight_number_read_it_as_missing(tmp_path):
    written_log(tmp_path / "log", 2, fields=REQUEST_FIELDS)
    rows, torn = read_log(tmp_path / "log")
    assert torn == 0 and len(rows) == 3 and rows["flight"].isna().all()


def test_lines_logged_before_the_store_fields_read_them_as_missing(tmp_path):
    """A log written before the request gained the feature store's fields (the 22-feature
    model's request and the flight number) reads back, those fields missing."""
    before = [f for f in API_REQUEST_FIELDS if f not in STORE_NAMES]
    written_log(tmp_path / "log", 2, fields=before)
    rows, torn = read_log(tmp_path / "log")
    assert torn == 0 and len(rows) == 3
    assert rows[list(STORE_NAMES)].isna().all().all() and (rows["distance"] == 719).all()


def test_a_torn_last_line_is_skipped_and_counted(tmp_path, caplog):
    path, ids = written_log(tmp_path / "log", 3)
    lines = path.read_bytes().splitlines(keepends=True)
    last = lines[-1]
    path.write_bytes(b"".join(lines[:-1]) + last[: len(last) // 2])  # cut mid-record
    with caplog.at_level(logging.WARNING):
        rows, torn = read_log(tmp_path / "log")
    assert torn == 1
    assert list(rows["request_id"].drop_duplicates()) == ids[:2] and len(rows) == 1 + 2
    assert f"{path}:3: torn last line skipped" in caplog.text


def test_a_logger_started_later_never_appends_to_a_torn_file(tmp_path):
    """A worker restarted under the killed one's pid (here: the same process) writes a file
    of its own, so the torn line stays the last line of its file."""
    path, ids = written_log(tmp_path / "log", 2)
    path.write_bytes(path.read_bytes()[:-10])  # killed mid-write
    later = PredictionLogger(tmp_path / "log", flush_seconds=3600)
    log_requests(later, 1)
    later.close()
    rows, torn = read_log(tmp_path / "log")
    assert torn == 1 and len(list((tmp_path / "log").glob("predictions-*.jsonl"))) == 2
    assert sorted(rows["request_id"]) == ["request-0", "request-0"]


def test_a_complete_last_line_without_its_newline_is_read(tmp_path):
    path, ids = written_log(tmp_path / "log", 2)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    rows, torn = read_log(tmp_path / "log")
    assert torn == 0 and list(rows["request_id"].drop_duplicates()) == ids


@pytest.mark.parametrize(
    "bad",
    [b'{"request_id": "x", "flig', b'{"request_id": "x"}', b"[1, 2]"],
    ids=["cut", "no flights", "not an object"],
)
def test_a_bad_line_before_the_last_is_an_error_naming_it(tmp_path, bad):
    path, _ = written_log(tmp_path / "log", 3)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + bad + b"\n" + lines[2])
    with pytest.raises(PipelineError, match=rf"{path}:2: not a prediction log line"):
        read_log(tmp_path / "log")


def test_columns_of_unequal_length_are_a_bad_line(tmp_path):
    path, _ = written_log(tmp_path / "log", 3)
    lines = path.read_bytes().splitlines(keepends=True)
    uneven = lines[1].replace(b'"distance":[719,719]', b'"distance":[719]')
    assert uneven != lines[1]
    path.write_bytes(lines[0] + uneven + lines[2])
    with pytest.raises(PipelineError, match=rf"{path}:2: .*distance"):
        read_log(tmp_path / "log")


def test_each_line_is_written_before_log_returns(tmp_path):
    """Nothing waits in memory for a flush: a worker killed right after answering (SIGKILL
    runs no flush) has logged what it answered."""
    logger = PredictionLogger(tmp_path / "log", flush_seconds=3600)  # no flush runs
    for n in range(1, 4):
        ids = log_requests(logger, n)
        rows, torn = read_log(tmp_path / "log")
        assert torn == 0 and list(rows["request_id"].drop_duplicates())[-n:] == ids
    logger.close()


def test_a_failed_write_raises_and_the_next_one_writes(tmp_path):
    blocked = tmp_path / "log"
    blocked.write_text("a file where the log folder should be")  # mkdir fails: OSError
    logger = PredictionLogger(blocked, flush_seconds=3600)
    with pytest.raises(OSError):  # the API's request fails: nothing answered goes unlogged
        log_requests(logger, 1)
    blocked.unlink()
    ids = log_requests(logger, 2)
    logger.close()
    rows, torn = read_log(blocked)
    assert torn == 0 and list(rows["request_id"].drop_duplicates()) == ids


# A process whose files may not grow past LIMIT bytes (RLIMIT_FSIZE; SIGXFSZ ignored, so a
# write across the limit is short, the next one fails): a full disk, for real, in a child.
FULL_DISK = """
import resource, signal, sys
from pathlib import Path
import numpy as np
from src.common.schema import EXAMPLE_FLIGHT, REQUEST_FIELDS
from src.serving.prediction_log import PredictionLogger
LIMIT = 5000
logger = PredictionLogger(Path(sys.argv[1]), flush_seconds=3600)
cols = {f: [EXAMPLE_FLIGHT.get(f)] for f in REQUEST_FIELDS}
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))
logged = 0
for i in range(100):
    try:
        logger.log(f"request-{i}", "flight-delay", "3", cols, np.full(1, 0.25))
        logged += 1
    except OSError as exc:
        print(logged, exc, file=sys.stderr)
        break
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
logger.log("after", "flight-delay", "3", cols, np.full(1, 0.25))  # room again
logger.close()
print(logged)
"""


def test_a_short_write_is_cut_back_so_no_partial_line_stays(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FULL_DISK), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "short write" in done.stderr  # the write that crossed the limit, cut back
    logged = int(done.stdout)
    rows, torn = read_log(tmp_path)
    assert torn == 0 and 0 < logged < 100
    assert list(rows["request_id"]) == [f"request-{i}" for i in range(logged)] + ["after"]


def test_a_challenger_line_that_matches_no_request_is_a_bad_line(tmp_path):
    path, _ = written_log(tmp_path / "log", 2)
    stray = b'{"seq":7,"shadow_version":"2","shadow_probability":[0.5]}\n'
    path.write_bytes(path.read_bytes() + stray + path.read_bytes().splitlines(True)[0])
    with pytest.raises(PipelineError, match=rf"{path}:3: .*match no request line above"):
        read_log(tmp_path / "log")


def test_lines_with_the_challengers_scores_inline_are_read(tmp_path):
    """The format before the challenger's scores had lines of their own."""
    path, _ = written_log(tmp_path / "log", 1)
    older = path.read_bytes().replace(b',"seq":0', b"").rstrip(b"}\n")
    path.write_bytes(older + b',"shadow_version":"2","shadow_probability":[0.5]}\n')
    rows, torn = read_log(tmp_path / "log")
    assert torn == 0 and list(rows["shadow_version"]) == ["2"]
    assert list(rows["shadow_probability"]) == [0.5]
