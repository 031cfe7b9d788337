"""`make loop` on the smoke slice (initial champion on January, February and March replayed):
a real server, the cycle in its own process, the real registry untouched; a second replay
decides February alike; the sensitivity table, which replays the cycle's own policy step
(src/monitoring/policy.py `policy_step`) in memory, agrees with the real replay."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from src import simulate
from src.registry.versions import CHAMPION, alias_version
from src.tracking.store import connect
from tests.integration.support import ARGS, CFG

pytestmark = pytest.mark.slow


def replay(paths, months: tuple[str, ...], *extra: str) -> dict:
    assert simulate.main([*ARGS, "--months", *months, *extra]) == 0
    return json.loads(paths.loop_file("decisions.json").read_text())


def two_values_each() -> tuple:
    """simulate.VARIATIONS cut to two values per setting: the config's own and the first
    other one. The tests check only the config's rows (one per setting varied) against the
    real replay, and those are all still there; the other value keeps each setting varied
    (a row that differs from the config's) and two patiences' fits shared by the gate's
    rows. The full table (14 rows, 5 patiences: 60 s of this module's 190 s) is the same
    code on more values; it is `make loop`'s by hand (CI's make loop skips it)."""
    cut = []
    for section, field, values in simulate.VARIATIONS:
        chosen = getattr(getattr(CFG, section), field)
        assert chosen in values, f"{section}.{field}={chosen} is not in the table"
        other = next(v for v in values if v != chosen)
        cut.append((section, field, tuple(v for v in values if v in (chosen, other))))
    return tuple(cut)


@pytest.fixture(scope="module")
def replays(smoke_pipeline):
    """Two replays, and what they must leave alone: February and March with the sensitivity
    table, and February alone again (a month is what a second replay must decide alike:
    March repeats its code, at the cost of another serve and cycle)."""
    name = CFG.registry.model_name
    before = (champion_of(smoke_pipeline, name), smoke_pipeline.alias_history(name).read_bytes())
    second = replay(smoke_pipeline, ("2",), "--no-sensitivity")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(simulate, "VARIATIONS", two_values_each())
        first = replay(smoke_pipeline, ("2", "3"))
    after = (champion_of(smoke_pipeline, name), smoke_pipeline.alias_history(name).read_bytes())
    return first, second, before, after


def test_a_second_replay_decides_alike(replays):
    first, second, _, _ = replays
    assert [m["month"] for m in second["months"]] == [2]
    assert second["months"][0] == first["months"][0]


def test_each_month_is_served_then_cycled(replays, smoke_pipeline):
    months = replays[0]["months"]
    assert [m["month"] for m in months] == [2, 3]
    assert months[0]["serving_version"] == "1"  # the initial champion, also the frozen model
    assert months[0]["loop_auc"] == pytest.approx(months[0]["frozen_auc"], abs=1e-12)
    assert months[0]["loop_ece"] == pytest.approx(months[0]["frozen_ece"], abs=1e-12)
    assert all(0 <= m[k] < 0.2 for m in months for k in ("loop_ece", "frozen_ece"))
    for month in months:
        assert month["rows"] > 20000 and 0.5 < month["loop_auc"] < 0.9
        # Every served prediction carried its flight number and met its outcome.
        assert month["live_counts"]["joined"] == month["rows"]
        assert month["live_counts"]["unmatched"] == 0
        assert month["live_auc"] == pytest.approx(month["loop_auc"], abs=1e-9)
        assert month["decision"] in ("promote", "reject") and month["gate"]["reason"]
    # March is served by whatever February's cycle left as @champion.
    assert months[1]["serving_version"] == months[0]["champion_after"]
    report = smoke_pipeline.loop_file("report.md").read_text()
    assert "| 02 | v1 |" in report and "## Sensitivity" in report
    assert smoke_pipeline.loop_file("auc.png").stat().st_size > 5000


def test_the_policy_replay_in_memory_matches_the_real_one(replays, smoke_pipeline):
    """The sensitivity table's rows for the config's settings are the real replay, redone in
    memory by the same policy step: the same promotions and the same worst month."""
    months = replays[0]["months"]
    table = json.loads(smoke_pipeline.loop_file("sensitivity.json").read_text())
    chosen = [row for row in table if row["chosen"]]
    assert len(chosen) == 4  # one per setting varied
    assert len(table) == 8  # and one other value of each
    worst = min(m["loop_auc"] - m["frozen_auc"] for m in months)
    promotions = sum(m["decision"] == "promote" for m in months)
    for row in chosen:
        assert row["promotions"] == promotions
        assert row["worst_month_gap"] == pytest.approx(worst, abs=1e-9)


def test_the_real_registry_is_left_alone(replays, smoke_pipeline):
    _, _, before, after = replays
    assert after == before
    assert len(list((smoke_pipeline.loop / "sandbox" / "mlruns").glob("*/mlflow.db"))) == 1


def champion_of(paths, name: str) -> str:
    connect(paths)
    return alias_version(MlflowClient(), name, CHAMPION)
