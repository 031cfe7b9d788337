"""The local engine: score files on this machine, one record batch at a time.

Each batch is read (pyarrow), checked row by row (src/batch/rows.py), scored by the model's
own `predict_proba` (the features and the booster, as everywhere), and appended to the
output with its pass-through columns; bad rows go to the rejects file with their field and
reason. Both files are written beside their targets and renamed into place only when the
run succeeds, so a failed run leaves no partial output.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from src.batch.files import (
    DECISION,
    MODEL_NAME,
    MODEL_VERSION,
    Summary,
    count_rows,
    passthrough_columns,
    read_batches,
    with_lineage,
)
from src.batch.rows import REJECT_FIELD, REJECT_REASON, check_rows
from src.common.errors import SchemaError
from src.common.io import atomic_path
from src.common.schema import PREDICTION
from src.model.features import request_columns
from src.model.model import FlightDelayModel


def score_files(
    files: list[Path],
    model: FlightDelayModel,
    model_id: tuple[str, str],
    threshold: float,
    output: Path,
    rejects: Path,
    lineage: dict,
    batch_rows: int = 65536,
    progress: bool = True,
) -> Summary:
    """Score every row of `files` with `model` (named `model_id`: name, version) into the
    Parquet file `output`; rows that fail the checks go to `rejects` (JSON lines)."""
    summary = Summary(files=len(files))
    bar = tqdm(total=count_rows(files), unit=" rows", unit_scale=True, disable=not progress)
    start = time.perf_counter()
    with (
        atomic_path(output) as out_tmp,
        atomic_path(rejects) as rej_tmp,
        open(rej_tmp, "w") as rejected,
        ParquetOutput(out_tmp, lineage) as writer,
    ):
        for where, offset, batch, checked in checked_batches(files, batch_rows):
            proba = model.predict_proba(request_columns(checked.valid))
            writer.write(output_table(batch, checked, proba, model_id, threshold, where), where)
            write_rejects(rejected, checked.rejects, where, offset)
            summary.rows += batch.num_rows
            summary.rejected += len(checked.rejects)
            bar.update(batch.num_rows)
    bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def checked_batches(files: list[Path], batch_rows: int) -> Iterator[tuple]:
    """(file, first row's number in the file, record batch, its rows checked) per batch."""
    for path in files:
        offset = 0
        for batch in read_batches(path, batch_rows):
            yield str(path), offset, batch, check_rows(batch.to_pandas(), str(path))
            offset += batch.num_rows


def output_table(batch: pa.RecordBatch, checked, proba, model_id, threshold, where) -> pa.Table:
    """The batch's valid rows: their pass-through columns, then the result columns."""
    keep = passthrough_columns(batch.schema.names, where)
    table = pa.Table.from_batches([batch.select(keep).filter(pa.array(checked.ok))])
    n, (name, version) = len(proba), model_id
    results = {
        PREDICTION: pa.array(proba, pa.float64()),
        DECISION: pa.array(proba >= threshold),
        MODEL_NAME: pa.array(np.full(n, name, dtype=object), pa.string()),
        MODEL_VERSION: pa.array(np.full(n, version, dtype=object), pa.string()),
    }
    for column, values in results.items():
        table = table.append_column(column, values)
    return table


class ParquetOutput:
    """One Parquet file written batch by batch. The first batch fixes the columns; a later
    file whose pass-through columns differ is an error naming the file and the column."""

    def __init__(self, path: Path, lineage: dict):
        self.path, self.lineage, self.writer = path, lineage, None

    def write(self, table: pa.Table, where: str) -> None:
        if self.writer is None:
            schema = with_lineage(table.schema, self.lineage)
            self.writer = pq.ParquetWriter(self.path, schema)
        elif table.schema.names != self.writer.schema.names:
            raise_mismatch(self.writer.schema, table.schema, where)
        try:
            self.writer.write_table(table.cast(self.writer.schema))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise_mismatch(self.writer.schema, table.schema, where, exc)

    def __enter__(self) -> ParquetOutput:
        return self

    def __exit__(self, failed, *_) -> None:
        if self.writer is None and failed is None:  # no rows: the result columns, empty
            empty = pa.table({c: pa.array([], t) for c, t in EMPTY_RESULT.items()})
            self.writer = pq.ParquetWriter(self.path, with_lineage(empty.schema, self.lineage))
        if self.writer is not None:
            self.writer.close()


EMPTY_RESULT = {
    PREDICTION: pa.float64(),
    DECISION: pa.bool_(),
    MODEL_NAME: pa.string(),
    MODEL_VERSION: pa.string(),
}


def raise_mismatch(first: pa.Schema, this: pa.Schema, where: str, exc=None) -> None:
    differ = [
        f"{f.name} ({this.field(f.name).type if f.name in this.names else 'absent'} here, "
        f"{f.type} in the first file)"
        for f in first
        if f.name not in this.names or this.field(f.name).type != f.type
    ] or [f"{n} (not in the first file)" for n in this.names if n not in first.names]
    detail = f": {exc}" if exc and not differ else ""
    raise SchemaError(f"{where}: pass-through columns differ: {', '.join(differ)}{detail}")


def write_rejects(out, rejects, path: str, offset: int) -> None:
    """One JSON line per rejected row: where it came from, why, and its values as read."""
    if rejects.empty:
        return
    rows = rejects.astype(object).where(rejects.notna(), None)
    for row_number, record in zip(rows.index, rows.to_dict("records"), strict=True):
        line = {
            "source_file": path,
            "source_row": offset + int(row_number),
            REJECT_FIELD: record.pop(REJECT_FIELD),
            REJECT_REASON: record.pop(REJECT_REASON),
            **record,
        }
        out.write(json.dumps(line, default=str) + "\n")
