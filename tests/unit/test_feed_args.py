"""`python -m src.feed` feeds the store the API reads: Redis when FD_REDIS_URL is set (the
API's FD_REDIS_URL, src/common/settings.py), else the SQLite file. The suite starts with
every FD_* variable unset (tests/conftest.py)."""

from __future__ import annotations

import pytest

from src import feed

URL = "redis://redis:6379/0"


def test_without_fd_redis_url_the_default_is_sqlite():
    args = feed.parse_args([])
    assert args.store == "sqlite"
    assert args.redis_url == "redis://127.0.0.1:6379/0"  # what --store redis alone reaches


def test_fd_redis_url_makes_redis_the_default_at_that_url(monkeypatch):
    monkeypatch.setenv("FD_REDIS_URL", URL)
    args = feed.parse_args(["--until", "2013-08-15T12:00Z"])
    assert (args.store, args.redis_url) == ("redis", URL)


def test_the_command_line_wins_over_fd_redis_url(monkeypatch):
    monkeypatch.setenv("FD_REDIS_URL", URL)
    assert feed.parse_args(["--store", "sqlite"]).store == "sqlite"
    assert feed.parse_args(["--redis-url", "redis://10.0.0.1:6380/2"]).redis_url == (
        "redis://10.0.0.1:6380/2"
    )


def test_help_says_where_the_defaults_come_from(capsys):
    with pytest.raises(SystemExit):
        feed.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: redis when FD_REDIS_URL is set, else sqlite" in text
    assert "default: FD_REDIS_URL" in text
