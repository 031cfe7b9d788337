"""Stage: build the offline store, each feature view's point-in-time table, from the raw data.

Writes data/features/<view>.parquet and a manifest naming the raw snapshot it came from.
"""

from __future__ import annotations

import argparse
import logging

from src.common.config import CONFIG_HELP, load_config
from src.common.logs import run_stage
from src.common.paths import get_paths
from src.data.validate import read_snapshot
from src.featurestore.offline import build_views, write_views

log = logging.getLogger("features")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.features", description=__doc__.split("\n")[0])
    p.add_argument("--config", help=CONFIG_HELP)
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    raw = read_snapshot(paths, cfg.snapshot)
    write_views(paths, build_views(raw), raw["_manifest"])
    log.info("wrote %s", paths.features_manifest)
    return 0


def main(argv=None) -> int:
    return run_stage("features", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
