"""The offline store: the views' tables built from the raw snapshot, written to
data/features/ with a manifest of checksums, and joined to examples as of their moments."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from src.common.errors import PipelineError
from src.common.io import sha256_file, write_json, write_parquet
from src.common.paths import Paths
from src.featurestore.views import FEATURE_VIEWS, VIEWS, FeatureView, Raw

log = logging.getLogger(__name__)


def build_view(view: FeatureView, raw: Raw) -> pd.DataFrame:
    """One view's table, sorted by event time (as a lookup needs it), then by entity."""
    table = view.build(raw)[view.columns]
    order = [view.event_time, *view.entities]
    return table.sort_values(order, kind="stable").reset_index(drop=True)


def build_views(raw: Raw) -> dict[str, pd.DataFrame]:
    """Every view's table, by name; logs each one's rows and seconds."""
    tables = {}
    for name, view in VIEWS.items():
        start = time.perf_counter()
        tables[name] = build_view(view, raw)
        log.info(
            "built %s: %d rows in %.2f s", name, len(tables[name]), time.perf_counter() - start
        )
    return tables


def write_views(paths: Paths, tables: dict[str, pd.DataFrame], raw_manifest: dict) -> dict:
    """Each table as Parquet, then the manifest: the raw snapshot it came from, and per view
    its declaration, rows and checksum."""
    views = {}
    for name, table in tables.items():
        path, view = paths.features_file(name), VIEWS[name]
        write_parquet(path, table)
        views[name] = {
            "rows": len(table),
            "sha256": sha256_file(path),
            "entities": list(view.entities),
            "event_time": view.event_time,
            "ttl_s": view.ttl.total_seconds() if view.ttl else None,
            "fields": view.field_names,
        }
        log.info("wrote %s (%d rows)", path, len(table))
    manifest = {
        "raw_snapshot": raw_manifest["snapshot"],
        "raw_snapshot_sha256": raw_manifest["snapshot_sha256"],
        "views": views,
    }
    write_json(paths.features_manifest, manifest)
    return manifest


def load_views(paths: Paths) -> dict[str, pd.DataFrame]:
    """Every view's table as `python -m src.features` wrote it."""
    tables = {}
    for name in VIEWS:
        path = paths.features_file(name)
        if not path.is_file():
            raise PipelineError(f"{path}: not found; run `python -m src.features` first")
        table = pd.read_parquet(path)
        if list(table.columns) != VIEWS[name].columns:  # written for another declaration
            raise PipelineError(
                f"{path}: columns {list(table.columns)}, the view declares "
                f"{VIEWS[name].columns}; run `python -m src.features`"
            )
        tables[name] = table
    return tables


def as_of(
    examples: pd.DataFrame, tables: dict[str, pd.DataFrame], moment: str = "as_of"
) -> pd.DataFrame:
    """The examples with every view's fields as of each row's `moment` (a UTC instant): the
    view's latest row for the same entities with event time at or before it, never a later
    one; a row older than the view's time-to-live gives missing fields. Adds `<view>_age_s`,
    the seconds from that row's event time to the moment (missing when there is none).
    Views are joined in VIEWS order, so an entity may come from an earlier view's field (the
    timetable names the plane); a view that is not a model feature (the departure) is never
    joined, whatever `tables` holds. Row order and index are kept.

    A flight that had left by its moment sees its own departure in the state views: the
    caller scores flights before they leave."""
    if moment not in examples:
        raise PipelineError(f"examples: no column '{moment}' (the moment of each lookup)")
    when = examples[moment]
    if not isinstance(when.dtype, pd.DatetimeTZDtype) or str(when.dt.tz) != "UTC":
        raise PipelineError(f"examples: column '{moment}' must be UTC datetimes, not {when.dtype}")
    frame = examples.reset_index(drop=True)  # positions, whatever the examples' index
    frame[moment] = when.dt.as_unit("ns").array
    for name, view in FEATURE_VIEWS.items():
        if name in tables:
            frame = join_view(frame, view, tables[name], moment)
    return frame.set_axis(examples.index)


def join_view(
    frame: pd.DataFrame, view: FeatureView, table: pd.DataFrame, moment: str
) -> pd.DataFrame:
    """One view's fields and age, as of `moment`, added to `frame` (indexed by position:
    the values are put back by it; as_of passes it so)."""
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        raise PipelineError("join_view: the frame must be indexed 0..n-1 (reset_index first)")
    keys = list(view.entities)
    absent = [k for k in keys if k not in frame]
    if absent:
        raise PipelineError(f"examples: no column {absent} for the view '{view.name}'")
    clash = [c for c in [*view.field_names, f"{view.name}_age_s"] if c in frame]
    if clash:
        raise PipelineError(f"examples: column(s) {clash} clash with the view '{view.name}'")
    # merge_asof wants both sides sorted by time and no missing key; rows with a missing
    # entity find nothing, and `_row` puts every row back in its place.
    known = frame[[*keys, moment]].notna().all(axis=1).to_numpy()
    left = frame.loc[known, [*keys, moment]].assign(_row=np.flatnonzero(known))
    left = left.sort_values(moment, kind="stable")
    right = table[view.columns].sort_values(view.event_time, kind="stable")
    right[view.event_time] = right[view.event_time].dt.as_unit("ns")
    found = pd.merge_asof(
        left, right, left_on=moment, right_on=view.event_time, by=keys, direction="backward"
    )
    found = found.set_index("_row").reindex(np.arange(len(frame)))
    age = (found[moment] - found[view.event_time]).dt.total_seconds().to_numpy()
    values = found[view.field_names]
    if view.ttl is not None:
        # A stale value is missing, never current; its age still says how old it was.
        stale = pd.Series(age > view.ttl.total_seconds(), index=values.index)
        values = values.mask(stale, axis=0)
    return frame.assign(**values, **{f"{view.name}_age_s": age})
