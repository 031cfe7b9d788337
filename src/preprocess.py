"""Stage 2: validate the raw snapshot, join, clean, label and split by time.

    python -m src.preprocess [--config configs/default.yml]

Output: data/processed/{train,validation,test,reference,planes}.parquet + manifest.json,
each written atomically. The manifest records the raw snapshot's hash (lineage).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from src.common.config import Config, Split, load_config
from src.common.errors import DataContractError, PipelineError, SchemaError
from src.common.io import read_json, sha256_file, write_json, write_parquet
from src.common.logs import run_stage
from src.common.paths import DEFAULT_CONFIG, get_paths
from src.common.schema import (
    DELAY_MINUTES,
    FLIGHTS,
    PLANES,
    RAW_TABLES,
    REQUEST_FIELDS,
    TARGET,
    WEATHER,
    WEATHER_TABLE,
    Column,
    Table,
)

log = logging.getLogger("preprocess")
SPLITS = ("train", "validation", "test")
PROCESSED_COLUMNS = ("time_hour", *REQUEST_FIELDS, TARGET)
PLANE_COLUMNS = ("tailnum", "year", "seats", "engines", "manufacturer")


# ---------------------------------------------------------------- validation (pure)
def check_dtype(df: pd.DataFrame, col: Column, where: str) -> pd.Series:
    """Return the column coerced to its declared kind or raise naming the column."""
    s = df[col.name]
    if col.kind == "datetime":
        try:
            return pd.to_datetime(s, utc=True, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise SchemaError(
                f"{where}: column '{col.name}' is not an ISO datetime ({exc})"
            ) from None
    ok = {
        "int": pd.api.types.is_integer_dtype(s),
        "float": pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s),
        "str": pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s),
    }[col.kind]
    if col.kind == "int" and pd.api.types.is_float_dtype(s) and not col.nullable:
        ok = False  # NaN turned an int column to float
    if not ok:
        example = s.dropna().iloc[0] if s.notna().any() else None
        raise SchemaError(
            f"{where}: column '{col.name}' should be {col.kind}, found dtype {s.dtype} "
            f"(e.g. {example!r})"
        )
    if col.kind == "str":
        bad = s.dropna().map(type).ne(str)
        if bad.any():
            raise SchemaError(f"{where}: column '{col.name}' should hold strings only")
    return s.astype("float64") if col.kind == "float" else s  # one dtype per declared kind


def validate_table(df: pd.DataFrame, table: Table, where: str) -> pd.DataFrame:
    """Check columns, dtypes, nulls, ranges, patterns and the unique key of one raw table."""
    missing = [c.name for c in table.columns if c.name not in df.columns]
    if missing:
        raise SchemaError(f"{where}: missing column(s) {missing}")
    out = df.copy()
    for col in table.columns:
        s = out[col.name] = check_dtype(out, col, where)
        nulls = int(s.isna().sum())
        if nulls and not col.nullable:
            raise SchemaError(f"{where}: column '{col.name}' has {nulls} missing values")
        values = s.dropna()
        if col.min is not None and (values < col.min).any():
            raise SchemaError(f"{where}: column '{col.name}' has values < {col.min}")
        if col.max is not None and (values > col.max).any():
            raise SchemaError(f"{where}: column '{col.name}' has values > {col.max}")
        if col.pattern and not values.str.fullmatch(col.pattern).all():
            bad = values[~values.str.fullmatch(col.pattern)].iloc[0]
            raise SchemaError(f"{where}: column '{col.name}' value {bad!r} breaks {col.pattern}")
    if table.key and out.duplicated(list(table.key)).any():
        n = int(out.duplicated(list(table.key)).sum())
        raise SchemaError(f"{where}: {n} duplicate rows on key {list(table.key)}")
    return out


# ---------------------------------------------------------------- transforms (pure)
def drop_cancelled(flights: pd.DataFrame) -> pd.DataFrame:
    """EDA-01: a cancelled flight (no dep_delay) has no label; its missing tailnum leaks."""
    return flights[flights["dep_delay"].notna()]


def join_weather(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    """EDA-02: join on (origin, time_hour) in UTC; local hours repeat at DST fall-back."""
    cols = ["origin", "time_hour", *(c.name for c in WEATHER)]
    return flights.merge(weather[cols], on=["origin", "time_hour"], how="left", validate="m:1")


def label(flights: pd.DataFrame) -> pd.DataFrame:
    out = flights.assign(**{TARGET: (flights["dep_delay"] >= DELAY_MINUTES).astype("int8")})
    out = out.sort_values(list(FLIGHTS.key), kind="stable").reset_index(drop=True)
    return out[list(PROCESSED_COLUMNS)]


def split_by_month(df: pd.DataFrame, split: Split) -> dict[str, pd.DataFrame]:
    """EDA-08: a time split (months of 2013), never random."""
    months = {
        "train": split.train_months,
        "validation": split.validation_months,
        "test": split.test_months,
    }
    return {name: df[df["month"].isin(m)].reset_index(drop=True) for name, m in months.items()}


def reference_sample(train: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    n = min(rows, len(train))
    return train.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def summarize(flights: pd.DataFrame, kept: pd.DataFrame, planes: pd.DataFrame) -> dict:
    cancelled = flights["dep_delay"].isna()
    by_month = cancelled.groupby(flights["month"]).mean().round(6)
    return {
        "flights": len(flights),
        "cancelled": int(cancelled.sum()),
        "cancellation_rate": round(float(cancelled.mean()), 6),
        "cancellation_rate_by_month": {int(m): float(r) for m, r in by_month.items()},
        "weather_match_rate": round(float(kept["temp"].notna().mean()), 6),
        "plane_match_rate": round(float(kept["tailnum"].isin(planes["tailnum"]).mean()), 6),
        "delay_rate": round(float(kept[TARGET].mean()), 6),
    }


# ---------------------------------------------------------------- I/O at the edges
def read_snapshot(folder: Path) -> dict[str, pd.DataFrame]:
    """Verify checksums against the ingest manifest, then read and validate every table."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise PipelineError(f"{manifest_path}: raw snapshot not found; run `python -m src.ingest`")
    manifest = read_json(manifest_path)
    for f in manifest["files"]:
        if sha256_file(folder / f["file"]) != f["sha256"]:
            raise DataContractError(
                f"{folder / f['file']}: sha256 differs from {manifest_path.name}; "
                "the raw file is corrupted (re-ingest under a new snapshot)"
            )
    tables = {}
    for table in RAW_TABLES:
        path = folder / table.file
        log.info("reading and validating %s", path.name)
        # keep_default_na=False: only the literal "NA" is missing, so a code like "NAN" stays.
        df = pd.read_csv(path, na_values=["NA", ""], keep_default_na=False, low_memory=False)
        tables[table.name] = validate_table(df, table, path.name)
    tables["_manifest"] = manifest
    return tables


def preprocess(tables: dict, cfg: Config) -> tuple[dict[str, pd.DataFrame], dict]:
    flights, planes = tables[FLIGHTS.name], tables[PLANES.name]
    kept = label(join_weather(drop_cancelled(flights), tables[WEATHER_TABLE.name]))
    outputs = split_by_month(kept, cfg.split)
    outputs["reference"] = reference_sample(outputs["train"], cfg.split.reference_rows, cfg.seed)
    outputs["planes"] = planes[list(PLANE_COLUMNS)].sort_values("tailnum").reset_index(drop=True)
    for name in (*SPLITS, "reference"):
        if outputs[name].empty:
            raise PipelineError(f"split '{name}' is empty: check split months in the config")
    return outputs, summarize(flights, kept, planes)


def write_outputs(outputs: dict[str, pd.DataFrame], stats: dict, raw: dict, cfg: Config, out: Path):
    files = {}
    for name, df in outputs.items():
        path = out / f"{name}.parquet"
        write_parquet(path, df)
        rate = float(df[TARGET].mean()) if TARGET in df else None
        files[name] = {"rows": len(df), "sha256": sha256_file(path), "delay_rate": rate}
        log.info("wrote %s (%d rows)", path, len(df))
    manifest = {
        "raw_snapshot": raw["snapshot"],
        "raw_snapshot_sha256": raw["snapshot_sha256"],
        "config": cfg.name,
        "config_hash": cfg.hash,
        "split": cfg.split.model_dump(),
        "stats": stats,
        "files": files,
    }
    write_json(out / "manifest.json", manifest)
    return manifest


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.preprocess", description=__doc__.split("\n")[0])
    p.add_argument("--config", default=DEFAULT_CONFIG, help="pipeline config YAML")
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    tables = read_snapshot(paths.raw / cfg.snapshot)
    outputs, stats = preprocess(tables, cfg)
    log.info(
        "cancelled %d of %d flights (%.2f%%), excluded (EDA-01); weather matched %.2f%%",
        stats["cancelled"],
        stats["flights"],
        100 * stats["cancellation_rate"],
        100 * stats["weather_match_rate"],
    )
    write_outputs(outputs, stats, tables["_manifest"], cfg, paths.processed)
    return 0


def main(argv=None) -> int:
    return run_stage("preprocess", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
