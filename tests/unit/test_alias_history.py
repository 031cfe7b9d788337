"""The alias history and the rollback target derived from it."""

from __future__ import annotations

from src.registry.history import append_event, read_history, rollback_target


def event(version, event_name, previous=None, alias="champion"):
    return {"alias": alias, "version": version, "previous_version": previous, "event": event_name}


def test_append_and_read_round_trip(paths):
    path = paths.alias_history("m")  # one file per registered model, under models/registry/
    assert path == paths.models / "registry" / "m.alias-history.jsonl"
    append_event(
        path, model="m", alias="champion", version="1", previous_version=None, event="register"
    )
    append_event(
        path, model="m", alias="champion", version="2", previous_version="1", event="promote"
    )
    history = read_history(path)
    assert [e["version"] for e in history] == ["1", "2"]
    assert all("time" in e for e in history)


def test_rollback_goes_back_one_champion_at_a_time():
    history = [event("1", "register"), event("2", "promote", "1"), event("3", "promote", "2")]
    assert rollback_target(history, "3") == "2"
    history.append(event("2", "rollback", "3"))
    assert rollback_target(history, "2") == "1"
    history.append(event("1", "rollback", "2"))
    assert rollback_target(history, "1") is None


def test_rejected_challengers_are_never_rollback_targets():
    history = [
        event("1", "register"),
        event("2", "register", alias="challenger"),
        event("2", "reject", "1", alias="challenger"),
        event("3", "promote", "1"),
    ]
    assert rollback_target(history, "3") == "1"


def test_no_history_means_nothing_to_roll_back_to(tmp_path):
    assert read_history(tmp_path / "missing.jsonl") == []
    assert rollback_target([], "1") is None
