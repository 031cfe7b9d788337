"""The Spark engine: the local engine's job on Spark (local[2] here, a cluster by spark-submit).

The driver checks the files' columns and splits them into work units; each Spark task reads
its unit with the local engine's reader, counting rows from the unit's first row in its file
(so a reject names its row in the file), and scores it with the local engine's `score_batch`
and the model the driver loaded. Outputs (docs/batch.md#spark) are renamed into place when
every task has succeeded; input and output paths must be the same on every node.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from src.batch.files import BATCH_ROWS, LINEAGE_FILE, Summary, read_batches, with_lineage
from src.batch.local import Batch, common_output_schema, score_batch
from src.common.errors import PipelineError
from src.common.io import atomic_path
from src.model import model as model_file

log = logging.getLogger("predict")
DEFAULT_MASTER = "local[2]"
LOOPBACK = "127.0.0.1"
# A local master binds to loopback only, and a batch job on one machine needs no web UI. Its
# JVM only schedules the tasks (no row enters it), so it starts with the JIT's quick tier
# and a one-thread collector: their optimizing and parallel kinds would take the cores the
# tasks score on, for the whole run.
LOCAL_CONF = {
    "spark.driver.host": LOOPBACK,
    "spark.driver.bindAddress": LOOPBACK,
    "spark.ui.enabled": "false",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}
# Record batches per task at most: a row group of pyarrow's default size (1 Mi rows) makes
# four tasks, so one large file keeps every core busy.
UNIT_BATCHES = 4
REJECTS_PARTS = "_rejects"  # inside the output folder while it is written
TASK_RESULT = "rows long, rejected long, error string"


class Unit(NamedTuple):
    """A task's rows: batches [start, stop) of a CSV file (row_group None) or of one row group
    of a Parquet file, whose first row is the file's row `first_row`."""

    path: Path
    row_group: int | None
    first_row: int
    start: int = 0
    stop: int | None = None


def score_files(
    files: list[Path],
    model_uri: str,
    threshold: float,
    output: Path,
    rejects: Path,
    lineage: dict,
    master: str | None = None,
) -> Summary:
    """Score `files` with the model at `model_uri` (a models:/ URI or a model folder) on the
    session of `master` (default local[2]) or of spark-submit."""
    summary, start = Summary(files=len(files)), time.perf_counter()
    lineage = {**lineage, "threshold": threshold}
    schema = with_lineage(common_output_schema(files), lineage)
    model = logged_model(model_uri)  # before the JVM starts: a bad model fails at once
    units = work_units(files)
    spark, created = spark_session(master)
    try:
        with in_place(output) as out_tmp, atomic_path(rejects) as rej_tmp:
            (out_tmp / REJECTS_PARTS).mkdir()

            def tasks(ids: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
                for i in (i for batch in ids for i in batch.column(0).to_pylist()):
                    result = run_unit(i, units[i], model, lineage, schema, out_tmp)
                    yield pa.RecordBatch.from_pylist([result])

            log.info("%d file(s) in %d task(s)", len(files), len(units))
            tasks_df = spark.range(len(units), numPartitions=len(units))
            results = tasks_df.mapInArrow(tasks, TASK_RESULT).collect()
            if errors := [r.error for r in results if r.error]:
                raise PipelineError(errors[0])
            summary.rows = sum(r.rows for r in results)
            summary.rejected = sum(r.rejected for r in results)
            join_rejects(out_tmp / REJECTS_PARTS, rej_tmp)
            (out_tmp / LINEAGE_FILE).write_text(json.dumps(lineage, sort_keys=True) + "\n")
    finally:
        if created:
            spark.stop()
    summary.seconds = time.perf_counter() - start
    return summary


def logged_model(model_uri: str):
    """The model of a models:/ URI (downloaded by MLflow) or of a model folder (read without
    importing MLflow), read by the model's own loader."""
    from src.common.paths import MODEL_DATA, get_paths  # here: the tasks need no settings

    if not model_uri.startswith("models:/"):
        return model_file.load(Path(model_uri) / MODEL_DATA)
    from src.tracking.runs import load_logged_model
    from src.tracking.store import connect

    connect(get_paths())
    return load_logged_model(model_uri)


def work_units(files: list[Path]) -> list[Unit]:
    """Every file's rows as units, in file and row order: a CSV file whole, a Parquet file by
    row group (from its footer), a large row group in slices of UNIT_BATCHES batches."""
    units = []
    for path in files:
        if path.suffix.lower() != ".parquet":
            units.append(Unit(path, None, 0))
            continue
        meta, first_row = pq.ParquetFile(path).metadata, 0
        for group in range(meta.num_row_groups):
            rows = meta.row_group(group).num_rows
            for start in range(0, max(1, -(-rows // BATCH_ROWS)), UNIT_BATCHES):
                units.append(Unit(path, group, first_row, start, start + UNIT_BATCHES))
            first_row += rows
    return units


def unit_batches(unit: Unit) -> Iterator[Batch]:
    """The unit's record batches, each with the number in its file of its first row: the
    batches before `start` are read and counted, not scored."""
    if unit.row_group is None:
        read = read_batches(unit.path, BATCH_ROWS)
    else:
        parquet = pq.ParquetFile(unit.path, pre_buffer=False)
        read = parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=[unit.row_group])
    offset = unit.first_row
    for i, rows in enumerate(itertools.islice(read, unit.stop)):
        if i >= unit.start:
            yield Batch(str(unit.path), offset, rows)
        offset += rows.num_rows


def run_unit(index: int, unit: Unit, model, lineage: dict, schema: pa.Schema, out: Path) -> dict:
    """A task: the unit's rows scored into the part file `index` and its rejects into a part
    of their own. A file's fault (a row the reader cannot parse) comes back as its one line."""
    name, rows, rejected, error = f"part-{index:05d}", 0, 0, None
    try:
        with (
            atomic_path(out / f"{name}.parquet") as part,
            atomic_path(out / REJECTS_PARTS / f"{name}.jsonl") as rej,
            open(rej, "w") as lines,
            pq.ParquetWriter(part, schema) as writer,
        ):
            for batch in unit_batches(unit):
                result = score_batch(batch, model, lineage, schema)
                writer.write_table(result.table)
                lines.writelines(result.rejects)
                rows, rejected = rows + result.rows, rejected + len(result.rejects)
    except PipelineError as exc:
        error = str(exc)
    except (pa.ArrowInvalid, OSError) as exc:  # a file that cannot be decoded or written
        error = f"{unit.path}: {exc}"
    return {"rows": rows, "rejected": rejected, "error": error}


def join_rejects(parts: Path, target: Path) -> None:
    """The units' reject lines into one file, in unit order: file, then row order."""
    with open(target, "wb") as joined:
        for part in sorted(parts.glob("part-*.jsonl")):
            with open(part, "rb") as lines:
                shutil.copyfileobj(lines, joined)
    shutil.rmtree(parts)


def spark_session(master: str | None = None):
    """(session, whether this call created it). Under spark-submit (which starts the driver
    with PYSPARK_GATEWAY_PORT set) the session is spark-submit's unless `master` is given;
    otherwise `master`, by default local[2], on loopback, with the workers in this Python."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    created = SparkContext._active_spark_context is None
    builder = SparkSession.builder.appName("flight-delay-predict")
    if master is None and "PYSPARK_GATEWAY_PORT" not in os.environ:
        master = DEFAULT_MASTER
    if master is not None and master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        for key, value in LOCAL_CONF.items():
            builder = builder.config(key, value)
    if master is not None:
        builder = builder.master(master)
    # Progress bars only for a person at a terminal; a cron log gets the WARN lines.
    builder = builder.config("spark.ui.showConsoleProgress", str(sys.stderr.isatty()).lower())
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # a line per connection closed
    if created:
        log.info("spark %s, master %s", spark.version, spark.sparkContext.master)
    return spark, created


@contextmanager
def in_place(target: Path) -> Iterator[Path]:
    """A new folder beside `target`, renamed over `target` on success; what was at `target`
    (a folder, or a file) is removed after."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir()
    try:
        yield tmp
        old = tmp.with_suffix(".old")
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        remove(old)
    finally:
        remove(tmp)


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
