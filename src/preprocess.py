"""Stage 2: the labelled examples: each flight that left, at each lead, with the features
the offline store (`python -m src.features`) held as of that moment; split by time.

Writes data/processed/ with a manifest naming the raw snapshot and the feature tables it
came from (lineage).
"""

from __future__ import annotations

import argparse
import logging

from src.common.config import CONFIG_HELP, load_config
from src.common.errors import PipelineError
from src.common.io import read_json, sha256_file
from src.common.logs import run_stage
from src.common.paths import get_paths
from src.data.prepare import preprocess
from src.data.processed import write_processed
from src.data.validate import read_snapshot
from src.featurestore.offline import load_views
from src.featurestore.training import labelled_examples

log = logging.getLogger("preprocess")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.preprocess", description=__doc__.split("\n")[0])
    p.add_argument("--config", help=CONFIG_HELP)
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    tables = read_snapshot(paths, cfg.snapshot)
    views = load_views(paths)
    lineage = features_lineage(paths, tables["_manifest"])
    split = cfg.split
    months = {*split.train_months, *split.validation_months, *split.test_months}
    flights = tables["flights"]
    examples = labelled_examples(flights[flights["month"].isin(months)], views, split.leads_hours)
    log.info("%d examples: flights at leads %s h", len(examples), split.leads_hours)
    outputs, stats = preprocess(tables, examples, cfg)
    message = "cancelled %d of %d flights (%.2f%%), excluded (EDA-01); weather known %.2f%%"
    rates = (100 * stats["cancellation_rate"], 100 * stats["weather_match_rate"])
    log.info(message, stats["cancelled"], stats["flights"], *rates)
    write_processed(paths, outputs, stats, lineage, cfg)
    return 0


def features_lineage(paths, raw_manifest: dict) -> dict:
    """The raw snapshot and the feature tables' manifest the examples come from; the
    tables are refused if they were built from another snapshot than the one read."""
    manifest = read_json(paths.features_manifest)
    if manifest["raw_snapshot_sha256"] != raw_manifest["snapshot_sha256"]:
        raise PipelineError(
            f"{paths.features_manifest}: built from snapshot {manifest['raw_snapshot']}"
            f" ({manifest['raw_snapshot_sha256'][:12]}), not the one read"
            f" ({raw_manifest['snapshot_sha256'][:12]}); run `python -m src.features`"
        )
    return {
        "raw_snapshot": raw_manifest["snapshot"],
        "raw_snapshot_sha256": raw_manifest["snapshot_sha256"],
        "features_manifest_sha256": sha256_file(paths.features_manifest),
    }


def main(argv=None) -> int:
    return run_stage("preprocess", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
