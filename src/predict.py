"""Batch scoring: flight records from Parquet or CSV files in, a scored Parquet file out.

    python -m src.predict --input flights.parquet --output scored.parquet
    python -m src.predict --input folder/ --output scored.parquet --model models:/flight-delay/3
    python -m src.predict --input folder/ --output scored/ --engine spark   # pyspark needed

Input: a .parquet or .csv file, or a folder of them, with the request's fields (the API's).
Other columns, such as a flight id, pass through to the output, row for row.
Output: the pass-through columns, delay_probability, predicted_delayed (probability >= the
config's serve.threshold), model_name and model_version; the model's lineage (run id, data
hash, git commit) is in the file's metadata (`src.batch.files.read_lineage`). Rows that fail
the request's checks go to the rejects file (JSON lines: file, row, field, reason, values).
The model: --model (a models:/ URI or a model folder), else the registry's @champion, else
the export in models/champion/, like the API.

    python -m src.predict --input keys.csv --output scored.parquet --enrich --lead 2

--enrich: the input holds flight keys only (carrier, flight, date as YYYY-MM-DD, optionally
origin). Each flight is found in the offline store's timetable (`python -m src.features`),
joined with every view as of its moment (--lead hours before its scheduled departure, or the
row's --as-of-column), and scored as above; sched_dep (and with --lead, as_of) are added to
the output. A key that names no departure, or two, or a moment not before the flight left,
is a rejected row.

    python -m src.predict --input flights.parquet --output scored.parquet --explain 3

--explain K (local engine): each row's K largest reasons, as the API's ?explain=true gives
them (the model's own contributions, TreeSHAP, summed by group): explanation_base,
explanation_raw_score (the logit before calibration), reason_1_group, reason_1_value, ...
reason_K_value.

Exit codes: 0 every row scored (an input without rows gives an empty output); 1 some rows
rejected (the output holds the rest); 2 an error (bad arguments, unreadable input, an output
that cannot be written, no model), and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from src.batch.files import (
    BATCH_ROWS,
    Summary,
    check_input,
    input_files,
    input_schema,
    passthrough_columns,
    read_batches,
    reject_line,
)
from src.common.config import CONFIG_HELP, load_config
from src.common.errors import ModelNotFoundError, PipelineError, SchemaError
from src.common.io import atomic_path, read_json, sha256_file
from src.common.logs import run_cron_stage
from src.common.paths import Paths, get_paths
from src.common.schema import LEAD_HOURS, REQUEST_FIELDS
from src.featurestore import enrich
from src.featurestore.offline import load_views
from src.model import model as model_file
from src.model.model import FlightDelayModel, NotExplainable
from src.serving.loader import LoadedModel, booster_for, load_champion
from src.serving.registry import MlflowRegistry

log = logging.getLogger("predict")
MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))")
LEAD_MAX = LEAD_HOURS.max or math.inf  # the request's bound on lead_hours
LINEAGE_FIELDS = ("git_commit", "data_manifest_sha256", "raw_snapshot_sha256", "config_hash")
# --explain: an explained row costs about 1 ms of CPU with the default recipe's trees, and 13 ms
# with 255-leaf ones (TreeSHAP over every tree; docs/batch.md), against 0.02 ms to score it:
# batches this small keep the bar moving whatever the trees.
EXPLAIN_BATCH_ROWS = 1024


def resolve_model(arg: str | None, cfg, paths) -> tuple[LoadedModel, str]:
    """--model as given, else the champion as the API finds it (registry, then export); and
    the URI MLflow loads it from (models:/name/version, or the model folder)."""
    if arg is None:
        loaded = load_champion(cfg, paths)
        if loaded.source == "registry":
            return loaded, f"models:/{loaded.name}/{loaded.version}"
        return loaded, str(paths.champion)
    if arg.startswith("models:/"):
        return from_registry(arg, cfg, paths), arg
    return from_folder(Path(arg), cfg), arg


def from_registry(uri: str, cfg, paths) -> LoadedModel:
    from mlflow.exceptions import MlflowException

    match = MODEL_URI.fullmatch(uri)
    if match is None:
        raise PipelineError(f"--model {uri}: expected models:/<name>/<version> or /<name>@<alias>")
    name, version, alias = match["name"], match["version"], match["alias"]
    registry = MlflowRegistry(paths)
    try:
        if alias is not None:
            target = registry.resolve_alias(name, alias)
            if target is None:
                raise ModelNotFoundError(f"--model {uri}: no alias @{alias} on {name}")
            version = target[0]
        model, run_id, metadata = registry.load_version(name, version, booster_for(cfg))
    except MlflowException as exc:
        raise ModelNotFoundError(f"--model {uri}: {exc.message}") from None
    return LoadedModel(model, name, version, alias or "", "registry", run_id, metadata)


def from_folder(folder: Path, cfg) -> LoadedModel:
    """A logged model's folder (downloaded, or the export in models/champion/)."""
    spec_file = folder / "MLmodel"
    if not spec_file.is_file():
        raise ModelNotFoundError(f"--model {folder}: not a model folder (no MLmodel file)")
    spec = yaml.safe_load(spec_file.read_text())
    pyfunc = spec.get("flavors", {}).get("python_function", {})
    if pyfunc.get("loader_module") != model_file.__name__:
        raise ModelNotFoundError(f"--model {folder}: not a model this project logged")
    export = folder / "metadata.json"  # the export's name, version and lineage, when present
    meta = read_json(export) if export.is_file() else {}
    model = model_file.load(folder / pyfunc["data"], booster_for(cfg))
    version = str(meta.get("version", "unregistered"))
    name = meta.get("name", folder.name)
    return LoadedModel(model, name, version, "", "folder", spec.get("run_id"), meta)


def lineage(loaded: LoadedModel, uri: str, threshold: float, engine: str) -> dict:
    return {
        "model_name": loaded.name,
        "model_version": loaded.version,
        "model_uri": uri,
        "run_id": loaded.run_id,
        **{k: loaded.metadata.get(k) for k in LINEAGE_FIELDS},
        "threshold": threshold,
        "engine": engine,
        "scored_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def positive(text: str) -> int:
    """An argparse type: a whole number, 1 or more."""
    if int(text) < 1:  # int's ValueError: argparse says "invalid positive value"
        raise argparse.ArgumentTypeError(f"{text} is not 1 or more")
    return int(text)


def lead(text: str) -> float:
    """An argparse type: hours before the departure, more than 0 (and at most a year)."""
    hours = float(text)  # float's ValueError: argparse says "invalid lead value"
    if not (0 < hours <= LEAD_MAX):  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text}: hours, more than 0 and at most {LEAD_MAX:g}")
    return hours


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.predict", description=__doc__.split("\n")[0])
    p.add_argument(
        "--input", required=True, type=Path,
        help=".parquet/.csv file or folder; one without rows gives an empty output and exit 0",
    )  # fmt: skip
    p.add_argument("--output", required=True, type=Path, help="the scored Parquet file")
    p.add_argument("--rejects", type=Path, help="default: <output>.rejects.jsonl beside it")
    p.add_argument("--model", help="models:/<name>/<version>, models:/<name>@<alias>, or a folder")
    p.add_argument("--engine", choices=("local", "spark"), default="local")
    p.add_argument("--spark-master", help="--engine spark: default local[2], or spark-submit's")
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--batch-rows", type=positive, default=BATCH_ROWS, help="rows per record batch")
    p.add_argument(
        "--workers", type=positive, default=1,
        help="local engine: threads that score batches (default 1, the plain path; more use"
        " more cores)",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--enrich", action="store_true",
        help="the input holds flight keys (carrier, flight, date YYYY-MM-DD, optionally origin):"
        " each flight's request is built from the offline store (python -m src.features) as of"
        " its moment; needs --lead or --as-of-column",
    )  # fmt: skip
    p.add_argument(
        "--explain", type=positive, default=0, metavar="K",
        help="local engine: add each row's K largest reasons (explanation_base,"
        " explanation_raw_score, reason_1_group, reason_1_value, ...), as the API's"
        " ?explain=true; default off",
    )  # fmt: skip
    moment = p.add_mutually_exclusive_group()
    moment.add_argument(
        "--lead", type=lead, metavar="HOURS",
        help="--enrich: each flight as of HOURS before its scheduled departure",
    )  # fmt: skip
    moment.add_argument(
        "--as-of-column", metavar="NAME",
        help="--enrich: each flight as of the moment in this column (ISO 8601 with a zone, such"
        " as 2013-03-05T10:00Z, or a Parquet timestamp with a zone)",
    )  # fmt: skip
    args = p.parse_args(argv)
    chosen = args.lead is not None or args.as_of_column is not None
    if args.enrich and not chosen:
        p.error("--enrich needs --lead HOURS or --as-of-column NAME")
    if chosen and not args.enrich:
        p.error("--lead and --as-of-column go with --enrich")
    if args.enrich and args.engine == "spark":
        p.error("--enrich runs on the local engine only")
    if args.explain and args.engine == "spark":
        p.error("--explain runs on the local engine only")
    if args.explain:
        args.batch_rows = min(args.batch_rows, EXPLAIN_BATCH_ROWS)
    return args


def check_explain(model: FlightDelayModel, top_k: int) -> None:
    """--explain K, before any work: the model gives contributions, and has K groups."""
    if not hasattr(model.estimator, "contributions"):
        raise NotExplainable(f"--explain: a {model.kind} model gives no per-feature contributions")
    groups = len(model.state.explanation_groups[0])
    if top_k > groups:
        raise PipelineError(
            f"--explain {top_k}: this model's features form {groups} groups; ask for 1 to {groups}"
        )


def check_paths(files: list[Path], source: Path, output: Path, rejects: Path, engine: str) -> None:
    """Before any work: each output can be written, and none may replace an input or the
    other output, or sit where a later run would read it as input."""
    inputs = {f.resolve() for f in files}
    out, rej = output.resolve(), rejects.resolve()
    for flag, path in (("--output", out), ("--rejects", rej)):
        if path in inputs:
            raise PipelineError(f"{flag} {path}: is an input file")
        if source.is_dir() and path.is_relative_to(source.resolve()):
            raise PipelineError(f"{flag} {path}: inside the input folder, a later run reads it")
        # The Spark engine's output is a Parquet folder (an old one is replaced); a file else.
        if path.is_dir() and not (flag == "--output" and engine == "spark"):
            raise PipelineError(f"{flag} {path}: is a folder, not a file")
        check_writable(flag, path)
    if out == rej:
        raise PipelineError(f"--rejects {rej}: the same file as --output")


def check_writable(flag: str, path: Path) -> None:
    """A file can be made where `path` will go: in its folder, or in the nearest folder
    above it that exists (where the job will create the rest)."""
    folder = next(p for p in path.parents if p.exists())
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise PipelineError(f"{flag} {path}: cannot write in {folder} ({exc.strerror})") from None


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    files = input_files(args.input)
    output = args.output
    rejects = args.rejects or output.with_name(output.stem + ".rejects.jsonl")
    check_paths(files, args.input, output, rejects, args.engine)
    loaded, uri = resolve_model(args.model, cfg, paths)
    log.info("scoring %d file(s) with %s v%s", len(files), loaded.name, loaded.version)
    run_lineage = lineage(loaded, uri, cfg.serve.threshold, args.engine)
    if args.explain:
        check_explain(loaded.model, args.explain)
        run_lineage["explain_top_k"] = args.explain
    if args.enrich:
        summary = score_keys(files, args, paths, loaded, uri, output, rejects, run_lineage)
    else:
        summary = score(files, args, loaded, uri, output, rejects, run_lineage)
    log.info(summary.line(output, rejects))
    if summary.rows and not summary.scored:
        log.warning("every row was rejected: %s says why", rejects)
    return 1 if summary.rejected else 0


def score(files, args, loaded, uri, output: Path, rejects: Path, run_lineage: dict) -> Summary:
    """The job itself: request records in `files`, scored into `output` and `rejects`."""
    if args.engine == "spark":
        from src.batch import spark

        return spark.score_files(
            files, uri, run_lineage["threshold"], output, rejects, run_lineage, args.spark_master
        )
    from src.batch import local

    return local.score_files(
        files, loaded.model, output, rejects, run_lineage,
        args.batch_rows, not args.no_progress, args.workers, args.explain,
    )  # fmt: skip


def score_keys(
    files, args, paths: Paths, loaded, uri, output: Path, rejects: Path, run_lineage: dict
) -> Summary:
    """--enrich: each keys file enriched from the offline store into a temporary Parquet file
    of request records (src/featurestore/enrich.py), then the job on those. Rejects of both
    steps name the keys file and row; the summary counts the keys' rows."""
    start = time.perf_counter()
    keys = [read_keys(path) for path in files]
    for path, table in zip(files, keys, strict=True):
        check_keys(path, table.schema.names, args, files[0], keys[0].schema.names)
    begin = time.perf_counter()
    tables = load_views(paths)
    rows = sum(len(t) for t in tables.values())
    log.info("offline store: %d views, %s rows, read in %.1f s", len(tables), f"{rows:,}",
             time.perf_counter() - begin)  # fmt: skip
    run_lineage["enrichment"] = {
        "lead_hours": args.lead,
        "as_of_column": args.as_of_column,
        "features_manifest_sha256": sha256_file(paths.features_manifest),
    }
    lines: list[tuple[int, int, str]] = []  # (file, row, JSON line): the rejects, in order
    positions = []  # per file: the keys' row of each record
    with tempfile.TemporaryDirectory(prefix="fd-enrich-") as tmp:
        enriched = [Path(tmp) / f"{i:05d}.parquet" for i in range(len(files))]
        for i, (path, table) in enumerate(zip(files, keys, strict=True)):
            found, rejected = enrich_file(path, table, tables, args, enriched[i])
            positions.append(found)
            lines += [(i, row, line) for row, line in rejected]
        with atomic_path(output) as out_tmp, atomic_path(rejects) as rej_tmp:
            job_rejects = Path(tmp) / "rejects.jsonl"
            score(enriched, args, loaded, uri, out_tmp, job_rejects, run_lineage)
            # The job's rejects name the temporary file: named again by the keys' file and row.
            index = {str(path): i for i, path in enumerate(enriched)}
            for text in job_rejects.read_text().splitlines():
                record = json.loads(text)
                i = index[record["source_file"]]
                row = int(positions[i][record["source_row"]])
                record |= {"source_file": str(files[i]), "source_row": row}
                lines.append((i, row, json.dumps(record, allow_nan=False) + "\n"))
            rej_tmp.write_text("".join(line for *_, line in sorted(lines)))
    total = sum(len(t) for t in keys)
    return Summary(len(files), total, len(lines), time.perf_counter() - start)


def enrich_file(path: Path, keys: pa.Table, tables, args, target: Path):
    """One keys file's request records written to `target`: (the keys' row of each record,
    [(row, rejects line)] for the keys that were not found)."""
    start = time.perf_counter()
    read = [n for n in (*enrich.KEYS, enrich.ORIGIN, args.as_of_column) if n in keys.column_names]
    found = enrich.enrich(keys.select(read).to_pandas(), tables, args.lead, args.as_of_column)
    records, problems = found.records, found.rejects
    pq.write_table(records_table(keys, records), target)
    values = keys.take(pa.array(problems.index, pa.int64())).to_pylist()
    where = zip(problems.index.tolist(), problems["field"], problems["reason"], values, strict=True)
    rejected = [(row, reject_line(str(path), row, *why)) for row, *why in where]
    log.info(
        "enriched %s: %s rows in %.1f s, %s found, %s rejected", path, f"{len(keys):,}",
        time.perf_counter() - start, f"{len(records):,}", f"{len(problems):,}",
    )  # fmt: skip
    return records.index.to_numpy(), rejected


def read_keys(path: Path) -> pa.Table:
    """A keys file whole, read as the job reads its input (CSV columns as text)."""
    batches = list(read_batches(path, BATCH_ROWS))
    if not batches:
        return input_schema(path).empty_table()
    return pa.Table.from_batches(batches)


def check_keys(path: Path, names: list[str], args, first: Path, first_names) -> None:
    """A keys file's faults, before any work: a key or the moment's column missing, a column
    the enrichment or the output fills, pass-through columns that differ from the first
    file's (SchemaError naming the file, exit 2)."""
    enrich.check_columns(names, args.as_of_column, str(path))
    # A column named like one of the output's:
    check_input(path, [*names, *REQUEST_FIELDS], args.explain)
    mine, theirs = set(passthrough_columns(names)), set(passthrough_columns(first_names))
    if mine != theirs:
        raise SchemaError(
            f"{path}: pass-through columns differ from {first}'s: here but not there "
            f"{sorted(mine - theirs)}, there but not here {sorted(theirs - mine)}"
        )


def records_table(keys: pa.Table, records) -> pa.Table:
    """The found rows: their pass-through columns as read, then the request record."""
    keep = passthrough_columns(keys.schema.names)
    rows = keys.select(keep).take(pa.array(records.index, pa.int64()))
    table = pa.Table.from_pandas(records, preserve_index=False)
    for position, name in enumerate(keep):
        table = table.add_column(position, name, rows.column(name))
    return table


def main(argv=None) -> int:
    return run_cron_stage("predict", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
