"""Fixtures only the integration tests use (helpers without fixtures live in support.py)."""

from __future__ import annotations

import pytest

from src.data.validate import read_snapshot
from src.featurestore.offline import build_views
from tests.integration.postgres_support import Postgres, postgres_server
from tests.integration.support import CFG


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    """A PostgreSQL server of the session's own on 127.0.0.1 (database `mlflow`, password
    auth), started only when a test asks for it and stopped at the end, failures included.
    Missing binaries: skipped, or failed when CI is set."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def raw(smoke_pipeline) -> dict:
    """The smoke project's raw snapshot, as the feature store reads it."""
    return read_snapshot(smoke_pipeline, CFG.snapshot)


@pytest.fixture(scope="module")
def views(raw) -> dict:
    """The feature views' tables built from `raw`."""
    return build_views(raw)
