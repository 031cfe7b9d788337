"""The prediction log's writer and reader: what the API logs is what the drift stage reads,
and a failed write keeps the requests for the next flush instead of losing them."""

from __future__ import annotations

import numpy as np

from src.common.schema import EXAMPLE_FLIGHT, REQUEST_FIELDS
from src.serving.prediction_log import PredictionLogger, read_log


def log_requests(logger: PredictionLogger, n: int) -> list[str]:
    ids = []
    for i in range(n):
        cols = {f: [EXAMPLE_FLIGHT[f]] * (i + 1) for f in REQUEST_FIELDS}
        ids.append(f"request-{i}")
        logger.log(ids[-1], "flight-delay", "3", cols, np.full(i + 1, 0.25))
    return ids


def test_logged_requests_read_back_one_row_per_flight(tmp_path):
    logger = PredictionLogger(tmp_path / "log", flush_seconds=3600)  # flushed by hand only
    ids = log_requests(logger, 3)
    assert logger.flush() == 3
    logger.close()
    rows = read_log(tmp_path / "log")
    assert len(rows) == 1 + 2 + 3
    assert list(rows["request_id"].drop_duplicates()) == ids
    assert (rows["delay_probability"] == 0.25).all() and (rows["model_version"] == "3").all()
    assert rows["wind_gust"].isna().all() and (rows["distance"] == 719).all()


def test_a_failed_write_keeps_the_requests_for_the_next_flush(tmp_path):
    blocked = tmp_path / "log"
    blocked.write_text("a file where the log folder should be")  # mkdir fails: OSError
    logger = PredictionLogger(blocked, flush_seconds=3600)
    ids = log_requests(logger, 4)
    assert logger.flush() == 0  # nothing written, nothing lost
    blocked.unlink()
    assert logger.flush() == 4
    logger.close()
    assert list(read_log(blocked)["request_id"].drop_duplicates()) == ids
