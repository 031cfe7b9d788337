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

Exit codes: 0 every row scored (an input without rows gives an empty output); 1 some rows
rejected (the output holds the rest); 2 an error (bad arguments, unreadable input, an output
that cannot be written, no model), and nothing is written.
"""

from __future__ import annotations

import argparse
import logging
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import yaml

from src.batch.files import BATCH_ROWS, input_files
from src.common.config import CONFIG_HELP, load_config
from src.common.errors import ModelNotFoundError, PipelineError
from src.common.io import read_json
from src.common.logs import run_cron_stage
from src.common.paths import get_paths
from src.model import model as model_file
from src.serving.loader import LoadedModel, booster_for, load_champion
from src.serving.registry import MlflowRegistry

log = logging.getLogger("predict")
MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))")
LINEAGE_FIELDS = ("git_commit", "data_manifest_sha256", "raw_snapshot_sha256", "config_hash")


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
    return p.parse_args(argv)


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
    threshold = cfg.serve.threshold
    run_lineage = lineage(loaded, uri, threshold, args.engine)
    if args.engine == "spark":
        from src.batch import spark

        summary = spark.score_files(
            files, uri, threshold, output, rejects, run_lineage, args.spark_master
        )
    else:
        from src.batch import local

        summary = local.score_files(
            files, loaded.model, output, rejects, run_lineage,
            args.batch_rows, not args.no_progress, args.workers,
        )  # fmt: skip
    log.info(summary.line(output, rejects))
    if summary.rows and not summary.scored:
        log.warning("every row was rejected: %s says why", rejects)
    return 1 if summary.rejected else 0


def main(argv=None) -> int:
    return run_cron_stage("predict", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
