"""The local engine: score files on this machine, one record batch at a time.

Every file's columns are checked before any row is scored (a required field missing, a
column named like an output's, pass-through columns that differ between files). Then each
batch is read (pyarrow), its rows checked (src/batch/rows.py), scored by the model's own
`predict_proba` (the features and the booster, as everywhere), and appended to the output
with its pass-through columns; bad rows go to the rejects file with their field and reason.
Both files are written beside their targets and renamed into place only when the run
succeeds, so a failed run leaves no partial output.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from src.batch.files import (
    BATCH_ROWS,
    DECISION,
    MODEL_NAME,
    MODEL_VERSION,
    Summary,
    check_input,
    count_rows,
    input_schema,
    output_schema,
    passthrough_columns,
    read_batches,
    reject_line,
    with_lineage,
)
from src.batch.rows import REJECT_FIELD, REJECT_REASON, Checked, check_rows
from src.common.errors import SchemaError
from src.common.io import atomic_path
from src.common.schema import PREDICTION, REQUEST_FIELDS
from src.model.features import request_columns
from src.model.model import FlightDelayModel


class Batch(NamedTuple):
    source: str  # the file it came from
    offset: int  # its first row's number in that file (0-based)
    rows: pa.RecordBatch  # as read
    checked: Checked  # its request fields, checked


def score_files(
    files: list[Path],
    model: FlightDelayModel,
    output: Path,
    rejects: Path,
    lineage: dict,
    batch_rows: int = BATCH_ROWS,
    progress: bool = True,
) -> Summary:
    """Score every row of `files` into the Parquet file `output`; rows that fail the checks
    go to `rejects` (JSON lines). `lineage` names the model (model_name, model_version,
    threshold, ...) and goes into the output's metadata."""
    schema = with_lineage(common_output_schema(files), lineage)
    summary = Summary(files=len(files))
    bar = tqdm(total=count_rows(files), unit=" rows", unit_scale=True, disable=not progress)
    start = time.perf_counter()
    with (
        atomic_path(output) as out_tmp,
        atomic_path(rejects) as rej_tmp,
        open(rej_tmp, "w") as rejected,
        pq.ParquetWriter(out_tmp, schema) as writer,
    ):
        for batch in checked_batches(files, batch_rows):
            proba = model.predict_proba(request_columns(batch.checked.valid))
            writer.write_table(output_table(batch, proba, lineage, schema))
            rejected.writelines(reject_lines(batch))
            summary.rows += batch.rows.num_rows
            summary.rejected += int((~batch.checked.ok).sum())
            bar.update(batch.rows.num_rows)
    bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def common_output_schema(files: list[Path]) -> pa.Schema:
    """The output's columns, from the first file; every file is checked first, and one whose
    pass-through columns differ (by name; order may differ) is an error naming both."""
    schemas = {path: input_schema(path) for path in files}
    for path, schema in schemas.items():
        check_input(path, schema.names)
    first_path, first = files[0], output_schema(schemas[files[0]])
    for path, schema in schemas.items():
        names = set(output_schema(schema).names)
        if names != set(first.names):
            extra, absent = sorted(names - set(first.names)), sorted(set(first.names) - names)
            raise SchemaError(
                f"{path}: pass-through columns differ from {first_path}'s: "
                f"here but not there {extra}, there but not here {absent}"
            )
    return first


def checked_batches(files: list[Path], batch_rows: int) -> Iterator[Batch]:
    for path in files:
        offset = 0
        for rows in read_batches(path, batch_rows):
            fields = [n for n in rows.schema.names if n in REQUEST_FIELDS]
            # Only the model's fields go through pandas (the checks); the others stay Arrow.
            frame = rows.select(fields).to_pandas(ignore_metadata=True)
            yield Batch(str(path), offset, rows, check_rows(frame, str(path)))
            offset += rows.num_rows


def output_table(batch: Batch, proba: np.ndarray, lineage: dict, schema: pa.Schema) -> pa.Table:
    """The batch's valid rows: their pass-through columns, then the result columns, in the
    output's column order and types (a later file's are cast to the first's)."""
    valid = batch.rows.filter(pa.array(batch.checked.ok))
    n = len(proba)
    columns = {name: valid.column(name) for name in passthrough_columns(valid.schema.names)}
    columns[PREDICTION] = pa.array(proba, pa.float64())
    columns[DECISION] = pa.array(proba >= lineage["threshold"])
    columns[MODEL_NAME] = pa.array(np.full(n, lineage["model_name"], dtype=object), pa.string())
    columns[MODEL_VERSION] = pa.array(np.full(n, lineage["model_version"], dtype=object))
    table = pa.table({name: columns[name] for name in schema.names})
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(f"{batch.source}: a pass-through column's type differs ({exc})") from None


def reject_lines(batch: Batch) -> Iterator[str]:
    """The batch's rejected rows, numbered by position in their file, values as read."""
    bad = ~batch.checked.ok
    if not bad.any():
        return
    positions = np.flatnonzero(bad)
    records = batch.rows.filter(pa.array(bad)).to_pylist()
    problems = batch.checked.rejects[[REJECT_FIELD, REJECT_REASON]].itertuples(index=False)
    for position, values, (field, reason) in zip(positions, records, problems, strict=True):
        yield reject_line(batch.source, batch.offset + int(position), field, reason, values)
