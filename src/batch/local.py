"""The local engine: score files on this machine, one record batch at a time.

Every file's columns are checked before any row is scored. Then each batch is read
(pyarrow), its rows checked (src/batch/rows.py), scored by the model's own `predict_proba`
and appended to the output with its pass-through columns; bad rows go to the rejects file.
Both files are renamed into place only when the run succeeds: a failed run leaves no
partial output.

Fast path (switch: `workers`, `--workers N`; default 1, the plain path: everything in this
thread, in turn): batches are checked and scored in that many threads, results written in
input order. LightGBM's C code and numpy let go of the GIL, so a second core nearly doubles
the rate (benchmarks/batch.py gives the figures). tests/integration/test_predict.py checks
that both write the same files.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from src.batch.files import (
    BATCH_ROWS,
    DECISION,
    EXPLANATION_BASE,
    EXPLANATION_RAW_SCORE,
    MODEL_NAME,
    MODEL_VERSION,
    Summary,
    check_input,
    count_rows,
    input_schema,
    numbers_parsed,
    output_schema,
    passthrough_columns,
    read_batches,
    reason_columns,
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


class Scored(NamedTuple):
    rows: int  # rows in the batch
    table: pa.Table  # the output's rows for its valid rows
    rejects: list[str]  # a JSON line per rejected row


def score_files(
    files: list[Path],
    model: FlightDelayModel,
    output: Path,
    rejects: Path,
    lineage: dict,
    batch_rows: int = BATCH_ROWS,
    progress: bool = True,
    workers: int = 1,
    explain: int = 0,
) -> Summary:
    """Score every row of `files` into the Parquet file `output`; rows that fail the checks
    go to `rejects` (JSON lines). `lineage` names the model (model_name, model_version,
    threshold, ...) and goes into the output's metadata. `explain` K > 0: each row's top K
    reasons too (the model's own `explain`, as the API's ?explain=true)."""
    schema = with_lineage(common_output_schema(files, explain), lineage)
    summary = Summary(files=len(files))
    bar = tqdm(total=count_rows(files), unit=" rows", unit_scale=True, disable=not progress)
    start = time.perf_counter()
    batches = read_all(files, batch_rows)
    if workers > 1:
        scored = in_threads(batches, model, lineage, schema, workers, explain)
    else:
        scored = (score_batch(batch, model, lineage, schema, explain) for batch in batches)
    with (
        atomic_path(output) as out_tmp,
        atomic_path(rejects) as rej_tmp,
        open(rej_tmp, "w") as rejected,
        pq.ParquetWriter(out_tmp, schema) as writer,
    ):
        for result in scored:
            writer.write_table(result.table)
            rejected.writelines(result.rejects)
            summary.rows += result.rows
            summary.rejected += len(result.rejects)
            bar.update(result.rows)
    bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def read_all(files: list[Path], batch_rows: int) -> Iterator[Batch]:
    for path in files:
        offset = 0
        for rows in read_batches(path, batch_rows):
            yield Batch(str(path), offset, rows)
            offset += rows.num_rows


def score_batch(
    batch: Batch, model: FlightDelayModel, lineage: dict, schema: pa.Schema, explain: int = 0
) -> Scored:
    """Check a batch's rows, score the valid ones (and explain them, `explain` > 0): the
    output's rows and the rejects."""
    fields = [n for n in batch.rows.schema.names if n in REQUEST_FIELDS]
    # Only the model's fields go through pandas (the checks); the others stay Arrow.
    frame = numbers_parsed(batch.rows.select(fields)).to_pandas(ignore_metadata=True)
    checked = check_rows(frame, batch.source)
    cols = request_columns(checked.valid)
    proba = model.predict_proba(cols)
    reasons = explanation_columns(model, cols, explain) if explain else {}
    table = output_table(batch, checked, proba, lineage, schema, reasons)
    return Scored(batch.rows.num_rows, table, list(reject_lines(batch, checked)))


def explanation_columns(model: FlightDelayModel, cols, top_k: int) -> dict[str, pa.Array]:
    """The flights' explanations (FlightDelayModel.explain, the API's) as the output's
    columns: base, raw score, then each reason's group and value."""
    why = model.explain(cols, top_k)
    columns = {
        EXPLANATION_BASE: pa.array([w.base for w in why], pa.float64()),
        EXPLANATION_RAW_SCORE: pa.array([w.raw_score for w in why], pa.float64()),
    }
    for i in range(top_k):
        group, value = reason_columns(i + 1)
        columns[group] = pa.array([w.reasons[i].group for w in why], pa.string())
        columns[value] = pa.array([w.reasons[i].value for w in why], pa.float64())
    return columns


def in_threads(batches, model, lineage, schema, workers: int, explain: int) -> Iterator[Scored]:
    """score_batch in `workers` threads, results in input order; at most two batches per
    thread in flight, so memory stays flat."""
    pending: deque = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="score") as pool:
        for batch in batches:
            pending.append(pool.submit(score_batch, batch, model, lineage, schema, explain))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def common_output_schema(files: list[Path], explain: int = 0) -> pa.Schema:
    """The output's columns, from the first file; every file is checked first, and one whose
    pass-through columns differ (by name; order may differ) is an error naming both."""
    schemas = {path: input_schema(path) for path in files}
    for path, schema in schemas.items():
        check_input(path, schema.names, explain)
    first_path, first = files[0], output_schema(schemas[files[0]], explain)
    for path, schema in schemas.items():
        names = set(output_schema(schema, explain).names)
        if names != set(first.names):
            extra, absent = sorted(names - set(first.names)), sorted(set(first.names) - names)
            raise SchemaError(
                f"{path}: pass-through columns differ from {first_path}'s: "
                f"here but not there {extra}, there but not here {absent}"
            )
    return first


def output_table(
    batch: Batch, checked: Checked, proba, lineage: dict, schema, reasons: dict
) -> pa.Table:
    """The batch's valid rows: their pass-through columns, then the result columns and the
    `reasons` (explanation columns, when asked for), in the output's column order and types
    (a later file's are cast to the first's)."""
    valid = batch.rows.filter(pa.array(checked.ok))
    columns = {name: valid.column(name) for name in passthrough_columns(valid.schema.names)}
    columns[PREDICTION] = pa.array(proba, pa.float64())
    columns[DECISION] = pa.array(proba >= lineage["threshold"])
    columns[MODEL_NAME] = pa.repeat(lineage["model_name"], len(proba))
    columns[MODEL_VERSION] = pa.repeat(lineage["model_version"], len(proba))
    columns |= reasons
    table = pa.table({name: columns[name] for name in schema.names})
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(f"{batch.source}: a pass-through column's type differs ({exc})") from None


def reject_lines(batch: Batch, checked: Checked) -> Iterator[str]:
    """The batch's rejected rows, numbered by position in their file, values as read."""
    bad = ~checked.ok
    if not bad.any():
        return
    positions = np.flatnonzero(bad)
    records = batch.rows.filter(pa.array(bad)).to_pylist()
    problems = checked.rejects[[REJECT_FIELD, REJECT_REASON]].itertuples(index=False)
    for position, values, (field, reason) in zip(positions, records, problems, strict=True):
        yield reject_line(batch.source, batch.offset + int(position), field, reason, values)
