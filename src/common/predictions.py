"""The prediction log's line format, shared by its writer (app/prediction_log.py) and its
reader (the drift stage): one JSON line per request, the flights as columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from src.common.errors import PipelineError
from src.common.schema import PREDICTION, REQUEST_FIELDS

META = ("request_id", "logged_at", "model_name", "model_version")


def encode(entry: tuple) -> bytes:
    request_id, logged_at, model_name, model_version, cols, proba = entry
    record = dict(zip(META, (request_id, logged_at, model_name, model_version), strict=True))
    record |= {"flights": cols, PREDICTION: np.asarray(proba, dtype=float)}
    return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)


def read_log(folder: Path):
    """Every logged flight as one row: META, the REQUEST fields and the probability."""
    import pandas as pd

    files = sorted(folder.glob("predictions-*.jsonl"))
    if not files:
        raise PipelineError(f"{folder}: no prediction log files (predictions-*.jsonl)")
    columns: dict[str, list] = {c: [] for c in (*META, *REQUEST_FIELDS, PREDICTION)}
    for path in files:
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            try:
                record = orjson.loads(line)
                n = len(record[PREDICTION])
                for field in REQUEST_FIELDS:
                    columns[field] += record["flights"][field]
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise PipelineError(f"{path}:{number}: not a prediction log line ({exc})") from None
            columns[PREDICTION] += record[PREDICTION]
            for key in META:
                columns[key] += [record[key]] * n
    return pd.DataFrame(columns)
