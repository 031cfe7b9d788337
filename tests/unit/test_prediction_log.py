"""The prediction log's writer and reader: what the API logs is what the drift stage reads,
a failed write keeps the requests for the next flush instead of losing them, and a torn last
line (a worker killed mid-write) costs that line only."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from src.common.errors import PipelineError
from src.common.schema import API_REQUEST_FIELDS, EXAMPLE_FLIGHT, REQUEST_FIELDS
from src.serving.prediction_log import PredictionLogger, read_log


def log_requests(logger: PredictionLogger, n: int, fields=API_REQUEST_FIELDS) -> list[str]:
    """Request i: i + 1 copies of the example flight, flight number 100 + i."""
    ids = []
    for i in range(n):
        flight = {**EXAMPLE_FLIGHT, "flight": 100 + i}
        cols = {f: [flight[f]] * (i + 1) for f in fields}
        ids.append(f"request-{i}")
        logger.log(ids[-1], "flight-delay", "3", cols, np.full(i + 1, 0.25))
    return ids


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
    assert list(rows["flight"]) == [100, 101, 101, 102, 102, 102]
    assert rows["shadow_version"].isna().all() and rows["shadow_probability"].isna().all()


def test_lines_logged_before_the_flight_number_read_it_as_missing(tmp_path):
    written_log(tmp_path / "log", 2, fields=REQUEST_FIELDS)
    rows, torn = read_log(tmp_path / "log")
    assert torn == 0 and len(rows) == 3 and rows["flight"].isna().all()


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


def test_a_failed_write_keeps_the_requests_for_the_next_flush(tmp_path):
    blocked = tmp_path / "log"
    blocked.write_text("a file where the log folder should be")  # mkdir fails: OSError
    logger = PredictionLogger(blocked, flush_seconds=3600)
    ids = log_requests(logger, 4)
    assert logger.flush() == 0  # nothing written, nothing lost
    blocked.unlink()
    assert logger.flush() == 4
    logger.close()
    rows, _ = read_log(blocked)
    assert list(rows["request_id"].drop_duplicates()) == ids
