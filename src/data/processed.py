"""The processed data: written by `src.preprocess` with a manifest, read by later stages."""

from __future__ import annotations

import logging

import pandas as pd

from src.common.config import Config
from src.common.errors import PipelineError
from src.common.io import sha256_file, write_json, write_parquet
from src.common.paths import SPLITS, Paths
from src.common.schema import FLIGHTS, TARGET

log = logging.getLogger(__name__)
# Each split is sorted by FLIGHTS.key and holds whole months, so a stable sort on the key's
# leading columns (year, month) restores preprocess's row order for any set of months.
MONTH_ORDER = list(FLIGHTS.key[:2])


def load_processed(paths: Paths, name: str) -> pd.DataFrame:
    """One processed file: train, validation, test, reference or planes."""
    path = paths.processed_file(name)
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run `python -m src.preprocess` first")
    return pd.read_parquet(path)


def load_months(paths: Paths, months: list[int], lead_hours: float | None = None) -> pd.DataFrame:
    """The labelled rows of `months` (of 2013), whichever split holds them, in the order
    preprocess writes them: at every lead, or at `lead_hours` only (each flight once)."""
    rows = pd.concat([load_processed(paths, name) for name in SPLITS], ignore_index=True)
    rows = rows[rows["month"].isin(months)]
    if lead_hours is not None:
        rows = rows[rows["lead_hours"] == lead_hours]
    if rows.empty:
        raise PipelineError(f"{paths.processed}: no labelled rows for months {months}")
    return rows.sort_values(MONTH_ORDER, kind="stable").reset_index(drop=True)


def months_label(months: list[int]) -> str:
    """A batch of months as a name for reports and gate evidence: [10, 11] -> 2013-10-11."""
    return "2013-" + "-".join(f"{m:02d}" for m in months)


def write_processed(
    paths: Paths,
    outputs: dict[str, pd.DataFrame],
    stats: dict,
    lineage: dict,
    cfg: Config,
) -> dict:
    """Every frame as parquet, then the manifest: `lineage` (the raw snapshot and feature
    tables the examples came from, src.preprocess), the config's hash, the stats."""
    files = {}
    for name, df in outputs.items():
        path = paths.processed_file(name)
        write_parquet(path, df)
        rate = float(df[TARGET].mean()) if TARGET in df else None
        files[name] = {"rows": len(df), "sha256": sha256_file(path), "delay_rate": rate}
        log.info("wrote %s (%d rows)", path, len(df))
    manifest = {
        **lineage,
        "config": cfg.name,
        "config_hash": cfg.hash,
        "split": cfg.split.model_dump(),
        "stats": stats,
        "files": files,
    }
    write_json(paths.processed_manifest, manifest)
    return manifest
