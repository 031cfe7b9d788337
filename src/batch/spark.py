"""The Spark engine: the local engine's job on Spark (local[2] here, a cluster by spark-submit).

Each file is read by Spark (Parquet as typed; a CSV file's request fields as text, so a bad
value rejects its row, not the file), and its rows are checked by the local engine's own
rules (`check_rows`, run on Arrow batches in a pandas UDF). Valid rows are scored by the
logged model through `mlflow.pyfunc.spark_udf`: the pyfunc's own `predict`, the features and
the booster, as in every path, fed the columns in the signature's types.

What it writes (a failed run leaves neither):
- `output`: a Parquet folder (Spark's part files) with the local engine's columns: the
  pass-through columns, delay_probability, predicted_delayed, model_name, model_version;
  the lineage in `_lineage.json` inside it (`src.batch.files.read_output_lineage`). It is
  written beside the target and renamed into place when complete.
- `rejects`: one JSON-lines file, the local engine's lines (source_file, source_row,
  reject_field, reject_reason, the row's values as read), sorted by file and row.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import reduce
from pathlib import Path

import numpy as np
import pandas as pd

from src.batch.files import (
    DECISION,
    LINEAGE_FILE,
    MODEL_NAME,
    MODEL_VERSION,
    Summary,
    check_input,
    passthrough_columns,
)
from src.batch.rows import REJECT_FIELD, REJECT_REASON, check_rows
from src.common.errors import SchemaError
from src.common.paths import get_paths
from src.common.schema import PREDICTION, REQUEST, REQUEST_FIELDS

log = logging.getLogger("predict")
DEFAULT_MASTER = "local[2]"
LOOPBACK = "127.0.0.1"
# A local master binds to loopback only, and a batch job on one machine needs no web UI.
LOCAL_CONF = {
    "spark.driver.host": LOOPBACK,
    "spark.driver.bindAddress": LOOPBACK,
    "spark.ui.enabled": "false",
}
SQL_CONF = {
    "spark.sql.legacy.parquet.nanosAsLong": "true",  # read pandas' timestamps: nanos_as_timestamps
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",  # not INT96: no time zone
    "spark.sql.debug.maxToStringFields": "200",  # a warning per run that plans are truncated
}
SPARK_TYPES = {"int": "bigint", "float": "double", "str": "string"}  # the model's signature
CHECKED = "_checked"  # struct: the request fields in the signature's types, null if rejected
REJECT_LINE = "_reject_line"  # the reject's JSON line, null if valid
ROW_ID = "_row_id"
EPOCH_NTZ = "TIMESTAMP_NTZ '1970-01-01 00:00:00'"
SOURCE_ROW_BITS = 33  # monotonically_increasing_id: partition index << 33, + row in partition


def score_files(
    files: list[Path],
    model_uri: str,
    threshold: float,
    output: Path,
    rejects: Path,
    lineage: dict,
    master: str | None = None,
) -> Summary:
    """Score every row of `files` with the model at `model_uri` (models:/name/version or a
    model folder) into the Parquet folder `output`; rows that fail the checks go to the
    JSON-lines file `rejects`. The Spark session: `master` (default local[2]), or the one
    spark-submit configured."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    summary = Summary(files=len(files))
    start = time.perf_counter()
    spark, created = spark_session(master)
    checked = None
    try:
        read = [numbered(read_file(spark, path), path) for path in files]
        frames = [
            checked_file(frame, path, first_row)
            for frame, path, first_row in zip(read, files, first_rows(read), strict=True)
        ]
        checked = union(frames, files).persist(StorageLevel.MEMORY_AND_DISK)  # read once
        counts = checked.agg(F.count(F.lit(1)), F.count(F.col(REJECT_LINE))).first()
        summary.rows, summary.rejected = int(counts[0]), int(counts[1])
        log.info("%d rows checked, %d rejected; scoring", summary.rows, summary.rejected)
        scored = score(spark, checked, model_uri, threshold, lineage)
        with in_place(output) as out_tmp, in_place(rejects) as rej_tmp:
            scored.write.parquet(str(out_tmp.absolute()))
            (out_tmp / LINEAGE_FILE).write_text(json.dumps(lineage, sort_keys=True) + "\n")
            write_rejects(checked, rej_tmp)
    finally:
        if checked is not None:
            checked.unpersist()
        if created:
            spark.stop()
    summary.seconds = time.perf_counter() - start
    return summary


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
    if master is not None:
        builder = builder.master(master)
    if master is not None and master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        for key, value in LOCAL_CONF.items():
            builder = builder.config(key, value)
    # Progress bars only for a person at a terminal; a cron log gets the WARN lines.
    builder = builder.config("spark.ui.showConsoleProgress", str(sys.stderr.isatty()).lower())
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # a line per connection closed
    for key, value in SQL_CONF.items():
        spark.conf.set(key, value)
    if created:
        log.info("spark %s, master %s", spark.version, spark.sparkContext.master)
    return spark, created


def read_file(spark, path: Path):
    """The file as a DataFrame. Every CSV column is text and an empty cell is missing, as in
    the local engine (src/batch/files.py, read_batches): the row checks parse the fields."""
    where = str(path.absolute())
    if path.suffix.lower() == ".parquet":
        return nanos_as_timestamps(spark.read.parquet(where), path)
    return spark.read.csv(where, header=True, inferSchema=False)


def nanos_as_timestamps(frame, path: Path):
    """Nanosecond timestamps (pandas writes them) back as timestamps: Spark reads them only
    as bigint nanoseconds (spark.sql.legacy.parquet.nanosAsLong); to microseconds, Spark's
    unit, with or without a time zone as in the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    nanos = {
        f.name: f.type.tz
        for f in pq.read_schema(path)
        if pa.types.is_timestamp(f.type) and f.type.unit == "ns"
    }
    if not nanos:
        return frame
    micros = {name: F.floor(F.col(name) / 1000) for name in nanos}
    return frame.withColumns(
        {
            name: (
                F.timestamp_micros(micros[name])
                if tz
                else F.timestamp_add("MICROSECOND", micros[name], F.expr(EPOCH_NTZ))
            )
            for name, tz in nanos.items()
        }
    )


def numbered(frame, path: Path):
    """The file's frame with ROW_ID (Spark's monotonically increasing id: the scan's
    partition index, then the row within it); a file missing a required field is an error
    here, before any row is read, with check_rows's message."""
    from pyspark.sql import functions as F

    check_input(path, frame.columns)
    return frame.withColumn(ROW_ID, F.monotonically_increasing_id())


def first_rows(frames: list) -> list:
    """Per file, a map column: partition index -> the number in the file of the partition's
    first row (Spark splits a file in order). One job counts the rows of every partition."""
    from pyspark.sql import functions as F

    part = F.shiftright(ROW_ID, SOURCE_ROW_BITS).alias("part")
    parts = [frame.select(F.lit(i).alias("file"), part) for i, frame in enumerate(frames)]
    counts = sorted(
        tuple(r)
        for r in reduce(lambda a, b: a.union(b), parts).groupBy("file", "part").count().collect()
    )
    maps = []
    for i in range(len(frames)):
        mine = [(part_index, n) for file, part_index, n in counts if file == i]
        starts = np.cumsum([0] + [n for _, n in mine])
        pairs = [F.lit(int(x)) for (k, _), s in zip(mine, starts, strict=False) for x in (k, s)]
        maps.append(F.create_map(*pairs) if pairs else F.create_map().cast("map<bigint,bigint>"))
    return maps


def checked_file(frame, path: Path, first_row):
    """The file's rows with their pass-through columns, CHECKED (the request fields as the
    model takes them) and REJECT_LINE (the local engine's JSON line for a rejected row)."""
    from pyspark.sql import functions as F

    where = str(path)
    columns = [name for name in frame.columns if name != ROW_ID]
    present = [name for name in columns if name in REQUEST_FIELDS]
    row_id = F.col(ROW_ID)
    source_row = first_row[F.shiftright(row_id, SOURCE_ROW_BITS)] + row_id.bitwiseAND(
        (1 << SOURCE_ROW_BITS) - 1
    )
    frame = frame.withColumn("_check", check_udf(where)(F.struct(*present)))
    problem = [F.col(f"_check.{name}").alias(name) for name in (REJECT_FIELD, REJECT_REASON)]
    line = F.to_json(
        F.struct(
            F.lit(where).alias("source_file"),
            source_row.alias("source_row"),
            *problem,
            F.struct(*[json_value(frame, name) for name in columns]).alias("values"),
        ),
        {"ignoreNullFields": "false"},
    )
    fields = [F.col(f"_check.{c.name}").alias(c.name) for c in REQUEST]
    return frame.select(
        *passthrough_columns(columns),
        F.struct(*fields).alias(CHECKED),
        F.when(F.col(f"_check.{REJECT_FIELD}").isNotNull(), line).alias(REJECT_LINE),
    )


def json_value(frame, name: str):
    """A column for the reject's JSON line: NaN as null (the local engine's lines)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, FloatType

    if isinstance(frame.schema[name].dataType, DoubleType | FloatType):
        return F.when(~F.isnan(name), F.col(name)).alias(name)
    return F.col(name)


def check_udf(where: str):
    """A pandas UDF: the request fields present (a struct, as read) in, per row CHECKED's
    fields (null on a rejected row) and the first problem's field and reason out."""
    from pyspark.sql.functions import pandas_udf

    fields = [f"{c.name} {SPARK_TYPES[c.kind]}" for c in REQUEST]
    result = ", ".join([*fields, f"{REJECT_FIELD} string", f"{REJECT_REASON} string"])

    # The type-hint form (Spark >= 3.0: the UDF type read from the hints) is missing from
    # pyspark's stub, which knows only the forms that pass a functionType.
    @pandas_udf(result)  # type: ignore[call-overload]
    def check(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in batches:
            yield checked_columns(frame, where)

    return check


def checked_columns(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """check_rows on a batch, spread back over all its rows."""
    checked = check_rows(frame, where)
    index, bad = frame.index, ~checked.ok
    out = {}
    for col in REQUEST:
        if col.name not in checked.valid:
            out[col.name] = pd.Series(None, index=index, dtype=object)
            continue
        values = checked.valid[col.name].reindex(index)
        out[col.name] = values.astype("Int64") if col.kind == "int" else values
    for name in (REJECT_FIELD, REJECT_REASON):
        values = np.full(len(frame), None, dtype=object)
        values[bad] = checked.rejects[name].to_numpy()
        out[name] = values
    return pd.DataFrame(out, index=index)


def union(frames: list, files: list[Path]):
    """One frame of all files. The first file fixes the pass-through columns; a later file's
    are cast to its types, and other names are an error naming the file."""
    from pyspark.sql import functions as F

    first = frames[0]
    names = first.columns
    combined = first
    for frame, path in zip(frames[1:], files[1:], strict=True):
        if frame.columns != names:
            theirs = [n for n in frame.columns if n not in (CHECKED, REJECT_LINE)]
            ours = [n for n in names if n not in (CHECKED, REJECT_LINE)]
            raise SchemaError(
                f"{path}: pass-through columns differ: {theirs} here, {ours} in the first file"
            )
        typed = [
            F.col(n).cast(first.schema[n].dataType) if n not in (CHECKED, REJECT_LINE) else n
            for n in names
        ]
        combined = combined.unionByName(frame.select(*typed))
    return combined


def score(spark, checked, model_uri: str, threshold: float, lineage: dict):
    """The valid rows: pass-through columns, then the local engine's result columns."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if model_uri.startswith("models:/"):
        from src.tracking.store import connect

        connect(get_paths())
    # env_manager="local": the executors' Python is the job's (this venv, or PYSPARK_PYTHON);
    # MLflow's warning on every run that it may differ from the training one is muted.
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(logging.ERROR)
    try:
        predict = mlflow.pyfunc.spark_udf(
            spark, model_uri, result_type="double", env_manager="local"
        )
    finally:
        pyfunc_log.setLevel(level)
    keep = [n for n in checked.columns if n not in (CHECKED, REJECT_LINE)]
    features = F.struct(*[F.col(f"{CHECKED}.{name}").alias(name) for name in REQUEST_FIELDS])
    valid = checked.filter(F.col(REJECT_LINE).isNull())
    return valid.select(*keep, predict(features).alias(PREDICTION)).select(
        *keep,
        PREDICTION,
        (F.col(PREDICTION) >= F.lit(threshold)).alias(DECISION),
        F.lit(str(lineage["model_name"])).alias(MODEL_NAME),
        F.lit(str(lineage["model_version"])).alias(MODEL_VERSION),
    )


def write_rejects(checked, target: Path) -> None:
    """The rejected rows' JSON lines into one file, in file and row order."""
    from pyspark.sql import functions as F

    lines = checked.filter(F.col(REJECT_LINE).isNotNull()).select(REJECT_LINE)
    parts = target.with_name(target.name + ".parts")
    ordered = lines.repartition(1).sortWithinPartitions(
        F.get_json_object(REJECT_LINE, "$.source_file"),
        F.get_json_object(REJECT_LINE, "$.source_row").cast("bigint"),
    )
    try:
        ordered.write.text(str(parts.absolute()))
        written = sorted(parts.glob("part-*"))
        if written:
            os.replace(written[0], target)
        else:
            target.write_text("")
    finally:
        shutil.rmtree(parts, ignore_errors=True)


@contextmanager
def in_place(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` (not created: Spark creates its folder), renamed over
    `target` on success; what was at `target` (a folder, or a file) is removed after."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
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
