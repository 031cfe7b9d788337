"""Raw tables checked against the schema declaration (src/common/schema.py): columns, dtypes,
nulls, ranges, patterns and keys. Every error names the file, the column and the rule."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from src.common.errors import DataContractError, PipelineError, SchemaError
from src.common.io import read_json, sha256_file
from src.common.paths import Paths
from src.common.schema import RAW_TABLES, Column, Table

log = logging.getLogger(__name__)


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
        if col.allowed and not values.isin(col.allowed).all():
            bad = values[~values.isin(col.allowed)].iloc[0]
            raise SchemaError(f"{where}: column '{col.name}' value {bad!r} not in {col.allowed}")
    if table.key and out.duplicated(list(table.key)).any():
        n = int(out.duplicated(list(table.key)).sum())
        raise SchemaError(f"{where}: {n} duplicate rows on key {list(table.key)}")
    return out


def read_snapshot(paths: Paths, snapshot: str) -> dict:
    """Verify checksums against the ingest manifest, then read and validate every table.
    Returns the tables by name, plus the manifest under "_manifest"."""
    folder, manifest_path = paths.snapshot(snapshot), paths.snapshot_manifest(snapshot)
    if not manifest_path.is_file():
        raise PipelineError(f"{manifest_path}: raw snapshot not found; run `python -m src.ingest`")
    manifest = read_json(manifest_path)
    for f in manifest["files"]:
        if sha256_file(folder / f["file"]) != f["sha256"]:
            raise DataContractError(
                f"{folder / f['file']}: sha256 differs from {manifest_path.name}; "
                "the raw file is corrupted (re-ingest under a new snapshot)"
            )
    tables = {table.name: read_table(folder / table.file, table) for table in RAW_TABLES}
    return tables | {"_manifest": manifest}


def read_table(path: Path, table: Table) -> pd.DataFrame:
    log.info("reading and validating %s", path.name)
    # keep_default_na=False: only the literal "NA" is missing, so a code like "NAN" stays.
    df = pd.read_csv(path, na_values=["NA", ""], keep_default_na=False, low_memory=False)
    return validate_table(df, table, path.name)
