"""One log format for every stage and the API; configured in `main` (or the API's lifespan)
only. FD_LOG_FORMAT=json writes one JSON object per line, for a log collector."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence

from src.common.errors import PipelineError
from src.common.settings import Settings, SettingsError

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
NOISY = ("alembic", "urllib3", "git", "matplotlib", "numba", "httpx")


class JsonFormatter(logging.Formatter):
    """One JSON object per record. A record's `fields` (`extra={"fields": {...}}`, as the
    API's request lines pass them) become keys of their own, for a collector to query."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if Settings().log_format == "json":
        handler.setFormatter(JsonFormatter())
        # uvicorn's and gunicorn's own loggers write plain text through handlers of their
        # own: send them through this one. The API writes its own request lines
        # (app.middleware), so uvicorn's access lines are dropped.
        for name in ("uvicorn", "uvicorn.error", "gunicorn.error"):
            logging.getLogger(name).handlers, logging.getLogger(name).propagate = [], True
        logging.getLogger("uvicorn.access").disabled = True
    else:
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    logging.basicConfig(level=level, handlers=[handler])
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_stage(
    name: str,
    body: Callable[[Sequence[str] | None], int],
    argv: Sequence[str] | None = None,
    error_code: int = 1,
) -> int:
    """Run a stage's body: a PipelineError becomes one line on stderr and `error_code`, a bad
    environment value one line and exit code 2."""
    try:
        setup_logging()
        return body(argv)
    except SettingsError as exc:
        return bad_settings(name, exc)
    except PipelineError as exc:
        logging.getLogger(name).error("%s: %s", type(exc).__name__, exc)
        return error_code


CRON_ERROR = 2  # exit code 1 means "acted or alerted" for the stages cron runs


def run_cron_stage(
    name: str,
    body: Callable[[Sequence[str] | None], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Run a stage that cron runs (drift, cycle), whose exit code 1 is a result, not a
    failure: every error, expected or not, becomes exit code 2 and a logged line."""
    try:
        return run_stage(name, body, argv, error_code=CRON_ERROR)
    except Exception:  # a traceback's exit code 1 would read as "acted"
        logging.getLogger(name).exception("%s failed", name)
        return CRON_ERROR


def bad_settings(name: str, exc: SettingsError) -> int:
    """A bad environment value, found before logging is set up (that reads the environment
    too): one plain line, and exit code 2 as argparse gives a bad flag (never 1, which cron
    reads as a result)."""
    print(f"{name}: {exc}", file=sys.stderr)
    return 2
