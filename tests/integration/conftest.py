"""Fixtures only the integration tests use (helpers without fixtures live in support.py)."""

from __future__ import annotations

import pytest

from tests.integration.postgres_support import Postgres, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    """A PostgreSQL server of the session's own on 127.0.0.1 (database `mlflow`, password
    auth), started only when a test asks for it and stopped at the end, failures included.
    Missing binaries: skipped, or failed when CI is set."""
    with postgres_server() as server:
        yield server
