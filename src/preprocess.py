"""Stage 2: validate the raw snapshot, join, clean, label and split by time.

Writes data/processed/ with a manifest recording the raw snapshot's hash (lineage).
"""

from __future__ import annotations

import argparse
import logging

from src.common.config import CONFIG_HELP, load_config
from src.common.logs import run_stage
from src.common.paths import get_paths
from src.data.prepare import preprocess
from src.data.processed import write_processed
from src.data.validate import read_snapshot

log = logging.getLogger("preprocess")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.preprocess", description=__doc__.split("\n")[0])
    p.add_argument("--config", help=CONFIG_HELP)
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    tables = read_snapshot(paths, cfg.snapshot)
    outputs, stats = preprocess(tables, cfg)
    rates = (100 * stats["cancellation_rate"], 100 * stats["weather_match_rate"])
    message = "cancelled %d of %d flights (%.2f%%), excluded (EDA-01); weather matched %.2f%%"
    log.info(message, stats["cancelled"], stats["flights"], *rates)
    write_processed(paths, outputs, stats, tables["_manifest"], cfg)
    return 0


def main(argv=None) -> int:
    return run_stage("preprocess", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
