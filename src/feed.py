"""Stage: feed the online store, applying the feature views' events in event-time order.

Reads data/features/ (`python -m src.features` first); writes the online store: the SQLite
file data/online/features.sqlite, or Redis (the default when FD_REDIS_URL is set, as the API
then reads Redis too). Without --from it resumes after the store's clock; with --until the
clock ends at that moment (a replay up to it). With --speed the replay runs on a simulated
clock: every second, the next `speed` seconds of events, so a reader of the store (the API,
the dashboard) sees the day unfold:

    python -m src.feed --until 2013-08-15T04:00Z               # up to the morning, at once
    python -m src.feed --until 2013-08-16T04:00Z --speed 600   # then the day, 10 min a second
"""

from __future__ import annotations

import argparse
import logging
import time

import pandas as pd

from src.common.errors import PipelineError
from src.common.logs import run_stage
from src.common.paths import get_paths
from src.common.settings import Settings
from src.featurestore.offline import load_views
from src.featurestore.online import OnlineStore, feed, open_store, timed_progress

log = logging.getLogger("feed")


def utc(text: str) -> pd.Timestamp:
    """A moment on the command line: ISO 8601, UTC when it names no offset."""
    try:
        stamp = pd.Timestamp(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 moment") from exc
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def parse_args(argv=None) -> argparse.Namespace:
    # The API reads Redis when FD_REDIS_URL is set, else the SQLite file: feed the same one.
    redis_url = Settings().redis_url
    p = argparse.ArgumentParser(prog="python -m src.feed", description=__doc__.split("\n")[0])
    p.add_argument(
        "--store",
        choices=("sqlite", "redis"),
        default="redis" if redis_url else "sqlite",
        help="default: redis when FD_REDIS_URL is set, else sqlite (data/online/features.sqlite)",
    )
    p.add_argument(
        "--redis-url",
        default=redis_url or "redis://127.0.0.1:6379/0",
        help="with --store redis; default: FD_REDIS_URL, else redis://127.0.0.1:6379/0",
    )
    p.add_argument("--from", dest="start", type=utc, help="first event time applied (UTC)")
    p.add_argument("--until", type=utc, help="last event time applied, and the clock after (UTC)")
    p.add_argument("--chunk", type=int, default=50_000, help="events per write (default 50000)")
    p.add_argument(
        "--speed",
        type=float,
        help="replay on a simulated clock up to --until: event seconds per real second",
    )
    args = p.parse_args(argv)
    if args.speed is not None and (args.speed <= 0 or args.until is None):
        p.error("--speed: a number of seconds above 0, and --until to replay up to")
    return args


def _main(argv=None) -> int:
    args = parse_args(argv)
    paths = get_paths()
    tables = load_views(paths)
    with open_store(args.store, paths.online_store, args.redis_url) as store:
        log.info("feeding the %s store from its clock %s", args.store, store.clock)
        start = time.perf_counter()
        if args.speed:
            applied = replay(store, tables, args.start, args.until, args.speed, args.chunk)
        else:
            applied = feed(store, tables, args.start, args.until, args.chunk, timed_progress())
        seconds = time.perf_counter() - start
        log.info(
            "applied %d events in %.1f s (%.0f events/s); clock %s",
            applied,
            seconds,
            applied / seconds if seconds else 0.0,
            store.clock,
        )
    return 0


def replay(
    store: OnlineStore,
    tables: dict[str, pd.DataFrame],
    start: pd.Timestamp | None,
    until: pd.Timestamp,
    speed: float,
    chunk: int,
    tick_s: float = 1.0,
) -> int:
    """The feed on a simulated clock: each tick, the events of the next `speed * tick_s`
    seconds, then a pause of `tick_s`; from `start` (default: the store's clock) to `until`,
    so ceil(span / step) ticks. Returns the events applied."""
    begin = start if start is not None else store.clock
    if begin is None:
        raise PipelineError("--speed: the store is empty; say where to start with --from")
    step = pd.Timedelta(seconds=speed * tick_s)
    moment, applied = begin, 0
    while moment < until:
        moment = min(moment + step, until)
        applied += feed(store, tables, start, moment, chunk)
        start = None  # later ticks resume after the clock
        log.info("replay: clock %s, %d events applied", moment, applied)
        if moment < until:
            time.sleep(tick_s)
    return applied


def main(argv=None) -> int:
    return run_stage("feed", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
