"""A lock on a registered model, held by the monitoring cycle while it trains, gates and
moves aliases, so two cycles (cron overlapping a manual run, two hosts) never interleave.

The registry offers one atomic operation to build it on: creating a registered model name,
which the store's unique constraint lets exactly one caller win. The lock is the registered
model `<name>.cycle-lock`, tagged with its holder; releasing it deletes it. A holder killed
without releasing leaves it behind: a lock older than `stale_after` is reported as stale,
never broken silently (two cycles each "breaking" it would both run).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from src.common.errors import PipelineError

log = logging.getLogger(__name__)


class LockHeld(PipelineError):
    """Another cycle holds the lock (`stale`: for longer than it should take)."""

    def __init__(self, message: str, stale: bool):
        super().__init__(message)
        self.stale = stale


def lock_name(model_name: str) -> str:
    return f"{model_name}.cycle-lock"


@contextmanager
def model_lock(client: MlflowClient, model_name: str, stale_after: timedelta) -> Iterator[None]:
    """Hold the cycle lock on `model_name` for the block; LockHeld when another holds it."""
    name = lock_name(model_name)
    now = datetime.now(UTC)
    holder = {"holder": f"{socket.gethostname()}:{os.getpid()}", "since": now.isoformat()}
    try:
        client.create_registered_model(
            name, tags=holder, description=f"held by the monitoring cycle of {model_name}"
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        raise _held(client, name, now, stale_after) from None
    log.info("cycle lock %s taken by %s", name, holder["holder"])
    try:
        yield
    finally:
        client.delete_registered_model(name)
        log.info("cycle lock %s released", name)


def _held(client: MlflowClient, name: str, now: datetime, stale_after: timedelta) -> LockHeld:
    tags = client.get_registered_model(name).tags
    since = datetime.fromisoformat(tags.get("since", now.isoformat()))
    holder = tags.get("holder", "unknown")
    if now - since > stale_after:
        return LockHeld(
            f"{name} held by {holder} since {since:%Y-%m-%d %H:%M} UTC, longer than a cycle "
            f"takes ({stale_after}): if that process is gone, delete the registered model "
            f"'{name}' (MLflow UI, or MlflowClient().delete_registered_model) and rerun",
            stale=True,
        )
    return LockHeld(f"{name} held by {holder} since {since:%H:%M:%S} UTC", stale=False)
