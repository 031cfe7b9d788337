"""The feed on a simulated clock (`python -m src.feed --speed`): a reader between ticks sees
the store's clock advance by `speed` seconds of events a tick, with exactly the events up to
it, and the replay ends at --until."""

from __future__ import annotations

import pandas as pd
import pytest

from src import feed as feed_stage
from src.common.errors import PipelineError
from src.featurestore.online_sqlite import SQLiteStore
from tests.unit.test_online_store import state_rows


@pytest.fixture
def store(tmp_path):
    with SQLiteStore(tmp_path / "online.sqlite") as s:
        yield s


TABLES = {
    "airport_state": state_rows(
        ("EWR", "2013-03-05 10:00", 1, 5.0),
        ("EWR", "2013-03-05 10:20", 2, 10.0),
        ("EWR", "2013-03-05 10:50", 3, 20.0),
        ("EWR", "2013-03-05 11:40", 4, 30.0),  # after --until: never applied
    )
}


def test_each_tick_applies_the_next_stretch_of_events_and_the_replay_ends_at_until(
    store, monkeypatch
):
    seen = []  # what a reader sees during each pause

    def pause(seconds):
        seen.append((store.clock, store.read("airport_state", ["EWR"])["airport_departed_2h"]))

    monkeypatch.setattr(feed_stage.time, "sleep", pause)
    start, until = pd.Timestamp("2013-03-05 10:00", tz="UTC"), pd.Timestamp(
        "2013-03-05 11:00", tz="UTC"
    )
    applied = feed_stage.replay(store, TABLES, start, until, speed=1200, chunk=10)

    step = pd.Timedelta(minutes=20)
    assert seen == [(start + step, 2.0), (start + 2 * step, 2.0)]  # no pause after the last
    assert store.clock == until and applied == 3
    assert store.read("airport_state", ["EWR"])["airport_departed_2h"] == 3.0


def test_a_replay_resumes_after_the_clock_and_needs_a_start_on_an_empty_store(store, monkeypatch):
    monkeypatch.setattr(feed_stage.time, "sleep", lambda seconds: None)
    until = pd.Timestamp("2013-03-05 11:00", tz="UTC")
    with pytest.raises(PipelineError, match="the store is empty; say where to start with --from"):
        feed_stage.replay(store, TABLES, None, until, speed=600, chunk=10)
    store.advance("2013-03-05T10:30Z")
    assert feed_stage.replay(store, TABLES, None, until, speed=600, chunk=10) == 1  # 10:50 only


def test_speed_needs_until_and_a_positive_number(capsys):
    for argv in (["--speed", "600"], ["--speed", "0", "--until", "2013-03-05T11:00Z"]):
        with pytest.raises(SystemExit) as exit_:
            feed_stage.parse_args(argv)
        assert exit_.value.code == 2
        assert "--speed: a number of seconds above 0, and --until" in capsys.readouterr().err
