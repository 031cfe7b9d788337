"""What the batch job reads and writes: input files found and read in record batches, the
output's columns, the lineage stored in the output's metadata, and the run's summary.

Both engines (src/batch/local.py, src/batch/spark.py) share these, so their outputs have the
same columns and the same lineage, and their summaries read alike.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from src.batch.rows import REJECT_FIELD, REJECT_REASON
from src.common.errors import PipelineError, SchemaError
from src.common.schema import PREDICTION, REQUEST, REQUEST_FIELDS

FORMATS = (".parquet", ".csv")
# The output's own columns, after the input's pass-through columns. The decision's name is
# not `delayed`: in the processed splits that is the observed label, which passes through.
DECISION = "predicted_delayed"
MODEL_NAME, MODEL_VERSION = "model_name", "model_version"
RESULT_SCHEMA = (
    pa.field(PREDICTION, pa.float64()),
    pa.field(DECISION, pa.bool_()),
    pa.field(MODEL_NAME, pa.string()),
    pa.field(MODEL_VERSION, pa.string()),
)
RESULT_COLUMNS = tuple(field.name for field in RESULT_SCHEMA)
# --explain K: the API's explanation (app/schemas.py Explanation: base, raw_score, reasons of
# group and value) flattened into columns after the results, reason 1 the largest.
EXPLANATION_BASE, EXPLANATION_RAW_SCORE = "explanation_base", "explanation_raw_score"
LINEAGE_KEY = b"flight_delay"  # the output file's metadata key: lineage as JSON
LINEAGE_FILE = "_lineage.json"  # a Parquet folder's (the Spark engine's output) lineage
NUMERIC_FIELDS = frozenset(c.name for c in REQUEST if c.kind in ("int", "float"))
CSV_BLOCK_BYTES = 16 * 2**20
BATCH_ROWS = 65536  # rows per record batch: a few MB of columns, and LightGBM's calls stay long


def input_files(path: Path) -> list[Path]:
    """The Parquet and CSV files to score: `path` itself, or the files in the folder (not its
    subfolders; hidden and `_`-prefixed files, such as Spark's markers, are skipped)."""
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and p.suffix.lower() in FORMATS and not p.name.startswith((".", "_"))
        )
        if not files:
            raise PipelineError(f"{path}: no .parquet or .csv files in this folder")
        return files
    if not path.is_file():
        raise PipelineError(f"{path}: no such file or folder")
    if path.suffix.lower() not in FORMATS:
        raise PipelineError(f"{path}: not a .parquet or .csv file")
    return [path]


def input_schema(path: Path) -> pa.Schema:
    """A file's columns, read before any row: a Parquet footer, or a CSV header (every CSV
    column is text, see read_batches). A CSV is UTF-8, with or without the byte-order mark
    spreadsheets write (Arrow skips it too)."""
    try:
        if path.suffix.lower() == ".parquet":
            return pq.read_schema(path)
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SchemaError(f"{path}: cannot read it ({exc})") from None
    return pa.schema([(name, pa.string()) for name in header])


def reason_columns(i: int) -> tuple[str, str]:
    """The i-th reason's columns (1-based): its group's name and its value (logit units)."""
    return f"reason_{i}_group", f"reason_{i}_value"


def explanation_schema(top_k: int) -> list[pa.Field]:
    """The explanation's columns for --explain top_k (none for 0)."""
    if not top_k:
        return []
    fields = [
        pa.field(EXPLANATION_BASE, pa.float64()),
        pa.field(EXPLANATION_RAW_SCORE, pa.float64()),
    ]
    for i in range(1, top_k + 1):
        group, value = reason_columns(i)
        fields += [pa.field(group, pa.string()), pa.field(value, pa.float64())]
    return fields


def check_input(path: Path, names: list[str], top_k: int = 0) -> None:
    """A file's own faults, found from its columns before scoring starts: a required field
    missing, or a column named like one of the output's (top_k: its explanation's too)."""
    missing = [c.name for c in REQUEST if not c.nullable and c.name not in names]
    if missing:
        raise SchemaError(f"{path}: required column(s) {missing} missing")
    ours = [*RESULT_COLUMNS, *(f.name for f in explanation_schema(top_k))]
    clash = sorted(set(names) & set(ours))
    if clash:
        raise SchemaError(f"{path}: column(s) {clash} would be overwritten by the output's")


def count_rows(files: list[Path]) -> int | None:
    """Rows in all files, from the Parquet footers; None when a CSV file is among them."""
    if any(f.suffix.lower() == ".csv" for f in files):
        return None
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def read_batches(path: Path, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The file's rows in record batches, so memory stays flat however large it is.

    Every CSV column is read as text, and only an empty cell is missing: Arrow would infer
    types from the first block (~1 MB), so a value further down that does not fit would fail
    the whole file, and its default missing markers ("NA", "NULL", ...) would turn valid
    text into gaps. The row checks parse the request fields (src/batch/rows.py); the other
    columns pass through as text."""
    try:
        if path.suffix.lower() == ".parquet":
            yield from pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=batch_rows)
            return
        text = {name: pa.string() for name in input_schema(path).names}
        convert = pa_csv.ConvertOptions(
            column_types=text, null_values=[""], strings_can_be_null=True
        )
        # Large blocks: a CSV batch is at most one block, and Arrow's 1 MiB default would cut
        # batches far below --batch-rows, each paying for its own checks and LightGBM call.
        blocks = pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES)
        for block in pa_csv.open_csv(path, read_options=blocks, convert_options=convert):
            for start in range(0, block.num_rows, batch_rows):
                yield block.slice(start, batch_rows)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SchemaError(f"{path}: cannot read it ({exc})") from None


def numbers_parsed(rows: pa.RecordBatch) -> pa.RecordBatch:
    """The numeric request fields of a CSV batch (text) parsed by Arrow, in one C++ call per
    column: parsing them in pandas, value by value, cost more than scoring the rows. A
    column holding a value Arrow cannot parse stays text, and the row checks parse it and
    reject that value's row (src/batch/rows.py): the result is the same, only slower. Arrow
    reads the rule's text (NUMBER_TEXT) and also "nan" and "inf", which the rule refuses: a
    column where it read one stays text too."""
    arrays = list(rows.columns)
    for i, name in enumerate(rows.schema.names):
        if name in NUMERIC_FIELDS and pa.types.is_string(rows.schema.field(i).type):
            with contextlib.suppress(pa.ArrowInvalid):  # not a number: the checks name it
                number = pc.cast(arrays[i], pa.float64())
                if pc.all(pc.is_finite(number)).as_py() is not False:
                    arrays[i] = number
    return pa.RecordBatch.from_arrays(arrays, names=rows.schema.names)


def passthrough_columns(names: list[str]) -> list[str]:
    """The input's columns other than the model's fields: they reach the output as read."""
    return [n for n in names if n not in REQUEST_FIELDS]


def output_schema(schema: pa.Schema, top_k: int = 0) -> pa.Schema:
    """The output's columns for an input's: its pass-through columns, then the results, then
    the explanation's (--explain top_k)."""
    keep = [schema.field(n) for n in passthrough_columns(schema.names)]
    return pa.schema([*keep, *RESULT_SCHEMA, *explanation_schema(top_k)])


def json_safe(value):
    """NaN as missing (null), as the row checks read it; an infinity as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value


def reject_line(source_file: str, source_row: int, field: str, reason: str, values: dict) -> str:
    """One rejected row as a JSON line: where it came from, why, and its values as read
    (strict JSON: see json_safe)."""
    safe = {k: json_safe(v) for k, v in values.items()}
    record = {"source_file": source_file, "source_row": source_row, REJECT_FIELD: field,
              REJECT_REASON: reason, "values": safe}  # fmt: skip
    return json.dumps(record, default=str, allow_nan=False) + "\n"


def with_lineage(schema: pa.Schema, lineage: dict) -> pa.Schema:
    return schema.with_metadata({LINEAGE_KEY: json.dumps(lineage, sort_keys=True).encode()})


def read_lineage(path: Path) -> dict:
    """The lineage a scored file carries (model, version, run, data hash, commit, ...)."""
    metadata = pq.read_schema(path).metadata or {}
    if LINEAGE_KEY not in metadata:
        raise SchemaError(f"{path}: no {LINEAGE_KEY.decode()} lineage in its metadata")
    return json.loads(metadata[LINEAGE_KEY])


def read_output_lineage(path: Path) -> dict:
    """The lineage of either engine's output: a Parquet file's metadata (`read_lineage`), or
    a Parquet folder's LINEAGE_FILE (the Spark engine's; readers of the folder skip it)."""
    if not path.is_dir():
        return read_lineage(path)
    if not (path / LINEAGE_FILE).is_file():
        raise SchemaError(f"{path}: no {LINEAGE_FILE} in this folder")
    return json.loads((path / LINEAGE_FILE).read_text())


@dataclass
class Summary:
    files: int
    rows: int = 0
    rejected: int = 0
    seconds: float = 0.0

    @property
    def scored(self) -> int:
        return self.rows - self.rejected

    def line(self, output: Path, rejects: Path) -> str:
        where = f"-> {output}" + (f" (rejects: {rejects})" if self.rejected else "")
        rate = self.rows / self.seconds if self.seconds else 0.0
        return (
            f"{self.rows:,} rows from {self.files} file(s) in {self.seconds:.1f} s "
            f"({rate:,.0f} rows/s): {self.scored:,} scored, "
            f"{self.rejected:,} rejected {where}"
        )
