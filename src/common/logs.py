"""One log format for every stage; configured in `main` only."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

from src.common.errors import PipelineError

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=FORMAT, datefmt="%H:%M:%S", stream=sys.stderr)
    for noisy in ("alembic", "urllib3", "git", "matplotlib", "numba", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_stage(name: str, body: Callable[[Sequence[str] | None], int], argv=None) -> int:
    """Run a stage's body: a PipelineError becomes one line on stderr and exit code 1."""
    setup_logging()
    try:
        return body(argv)
    except PipelineError as exc:
        logging.getLogger(name).error("%s: %s", type(exc).__name__, exc)
        return 1
