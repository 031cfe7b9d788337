"""The monitoring cycle on the smoke pipeline's real store and data: a decision with its
evidence, once per date, one at a time, exit codes for cron, no data from after --as-of, and
no date (--as-of, the cursor) later than the data.

Each test cycles a registered model of its own (the smoke run registered under another
name) with its own models and reports folders, so the smoke champion is untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import mlflow
import pandas as pd
import pytest
import yaml

from src import cycle
from src.common.io import read_json
from src.common.paths import ROOT, SPLITS, get_paths
from src.data.prepare import at_lead
from src.model.features import request_columns
from src.registry.history import read_history
from src.registry.lock import lock_name, model_lock
from src.registry.versions import CHALLENGER, CHAMPION, alias_version, create_version, move_alias
from src.tracking.runs import load_logged_model
from tests.integration.support import named, runs_of

pytestmark = pytest.mark.slow
AS_OF = "2013-02-28"  # smoke data: January and February labelled, March in the future


@pytest.fixture
def cycled(smoke_pipeline, mlflow_client, tmp_path, monkeypatch):
    """make(name): a config for registered model `name`, whose @champion is the smoke run;
    returns (cfg, the --config arguments)."""
    monkeypatch.setenv("FD_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FD_REPORTS_DIR", str(tmp_path / "reports"))
    smoke_run = runs_of(mlflow_client, "candidate")[0].info.run_id

    def make(name: str):
        cfg = named(name)
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        version = create_version(mlflow_client, smoke_run, name).version
        move_alias(mlflow_client, get_paths(), name, CHAMPION, version, "register")
        return cfg, ["--config", str(path)]

    return make


def versions_of(client, name: str) -> list[str]:
    return sorted(str(v.version) for v in client.search_model_versions(f"name = '{name}'"))


def test_a_cycle_decides_with_evidence_then_has_nothing_to_do(cycled, mlflow_client, capsys):
    cfg, args = cycled("cycle-once")
    name = cfg.registry.model_name
    assert cycle.main([*args, "--as-of", AS_OF]) == 1  # a decision was made
    summary = read_json(get_paths().cycle_file(AS_OF, "summary.json"))
    assert summary["labelled_months"] == [1, 2] and summary["window"] == "2013-02"
    assert summary["decision"] in ("promote", "reject")
    challenger = summary["challenger"]
    assert challenger["train_months"] == [1, 2] and 1 <= challenger["trees"] <= cfg.cycle.max_trees
    tags = mlflow_client.get_model_version(name, challenger["version"]).tags
    assert tags["gate.window"] == "2013-02" and tags["gate.promote"] == str(
        summary["decision"] == "promote"
    )
    assert float(tags["gate.ci_low"]) == pytest.approx(summary["gate"]["ci_low"])
    expected = challenger["version"] if summary["decision"] == "promote" else "1"
    assert alias_version(mlflow_client, name, CHAMPION) == expected
    assert alias_version(mlflow_client, name, CHALLENGER) is None
    events = [e["event"] for e in read_history(get_paths().alias_history(name))]
    assert events[-1] == summary["decision"]
    assert f"cycle {AS_OF} (2013-02): {summary['decision']}" in capsys.readouterr().out

    # The same date again, or an earlier one: nothing changes, and it says so.
    before = (versions_of(mlflow_client, name), get_paths().cycle_file(AS_OF, "summary.json"))
    written = before[1].read_bytes()
    for as_of in (AS_OF, "2013-01-31"):
        assert cycle.main([*args, "--as-of", as_of]) == 0
        assert "nothing to do: a cycle for 2013-02-28 already ran" in capsys.readouterr().out
    assert versions_of(mlflow_client, name) == before[0]
    assert before[1].read_bytes() == written
    assert alias_version(mlflow_client, name, CHAMPION) == expected


def cursor_of(client, name: str) -> str | None:
    return client.get_registered_model(name).tags.get(cycle.LAST_AS_OF)


def test_an_as_of_later_than_the_data_is_refused(cycled, mlflow_client, caplog):
    """Issue 23: `--as-of 2099-01-01` ran a cycle and set the cursor there, and every later
    cycle said "already ran". The smoke data ends on 2013-03-31."""
    cfg, args = cycled("cycle-future")
    name = cfg.registry.model_name
    assert cycle.main([*args, "--as-of", "2099-01-01"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        "PipelineError: --as-of 2099-01-01 is later than the data's last day, 2013-03-31"
    ]
    assert versions_of(mlflow_client, name) == ["1"] and cursor_of(mlflow_client, name) is None


def test_a_cursor_ahead_of_the_data_is_an_error_until_reset(cycled, mlflow_client, capsys, caplog):
    """A cursor the old code left ahead of the data: exit 2 naming the way out, not a
    silent "already ran"; --reset-cursor moves it back (never ahead), and monitoring resumes."""
    cfg, args = cycled("cycle-cursor")
    name = cfg.registry.model_name
    mlflow_client.set_registered_model_tag(name, cycle.LAST_AS_OF, "2099-01-01")
    assert cycle.main([*args, "--as-of", AS_OF]) == 2
    assert "cursor cycle.last_as_of 2099-01-01 is later than the data's last day" in caplog.text
    assert "--reset-cursor" in caplog.text and "already ran" not in capsys.readouterr().out

    assert cycle.main([*args, "--reset-cursor", "2013-04-01"]) == 2  # ahead of the data too
    assert cursor_of(mlflow_client, name) == "2099-01-01"
    assert cycle.main([*args, "--reset-cursor", "2013-01-31"]) == 0
    assert "cursor cycle.last_as_of 2099-01-01 -> 2013-01-31" in capsys.readouterr().out
    assert cursor_of(mlflow_client, name) == "2013-01-31"
    assert cycle.main([*args, "--as-of", AS_OF]) == 1
    assert cursor_of(mlflow_client, name) == AS_OF


@pytest.mark.parametrize("text", ["20130228", "2013-W09-4", "2013-2-28", "2013-02-30"])
def test_as_of_is_read_strictly_as_yyyy_mm_dd(text, capsys):
    with pytest.raises(SystemExit) as exited:
        cycle.parse_args(["--as-of", text])
    assert exited.value.code == 2
    assert f"argument --as-of: '{text}' is not a date written YYYY-MM-DD" in capsys.readouterr().err


def test_the_challenger_is_trained_and_gated_on_labelled_months_only(
    cycled, mlflow_client, smoke_pipeline, tmp_path, monkeypatch
):
    """The same cycle with March's rows in the data and with them deleted: the same trees,
    the same evidence, the same challenger."""
    full_cfg, full_args = cycled("cycle-full-data")
    assert cycle.main([*full_args, "--as-of", AS_OF]) == 1
    full = read_json(get_paths().cycle_file(AS_OF, "summary.json"))

    past = tmp_path / "past" / "processed"
    past.mkdir(parents=True)
    for path in smoke_pipeline.processed.iterdir():
        target = past / path.name
        if path.stem in SPLITS:
            frame = pd.read_parquet(path)
            frame[frame["month"] <= 2].to_parquet(target)
        else:
            target.write_bytes(path.read_bytes())
    monkeypatch.setenv("FD_DATA_DIR", str(past.parent))
    monkeypatch.setenv("FD_REPORTS_DIR", str(tmp_path / "reports-past"))
    past_cfg, past_args = cycled("cycle-past-data")
    assert cycle.main([*past_args, "--as-of", AS_OF]) == 1
    truncated = read_json(get_paths().cycle_file(AS_OF, "summary.json"))

    assert truncated["gate"] == full["gate"]
    assert truncated["challenger"]["trees"] == full["challenger"]["trees"]
    march = pd.read_parquet(smoke_pipeline.processed / "test.parquet").head(2000)
    scores = [
        load_logged_model(
            f"models:/{cfg.registry.model_name}/{s['challenger']['version']}"
        ).predict_proba(request_columns(march))
        for cfg, s in ((full_cfg, full), (past_cfg, truncated))
    ]
    assert (scores[0] == scores[1]).all()


def test_a_held_lock_means_nothing_done_and_a_stale_one_an_error(cycled, mlflow_client, capsys):
    cfg, args = cycled("cycle-locked")
    name = cfg.registry.model_name
    with model_lock(mlflow_client, name, timedelta(hours=2)):
        assert cycle.main([*args, "--as-of", AS_OF]) == 0
        assert "nothing done: another cycle is running" in capsys.readouterr().out
    assert versions_of(mlflow_client, name) == ["1"]

    long_ago = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
    mlflow_client.create_registered_model(
        lock_name(name), tags={"holder": "gone:1", "since": long_ago}
    )
    assert cycle.main([*args, "--as-of", AS_OF]) == 2
    mlflow_client.delete_registered_model(lock_name(name))
    assert cycle.main([*args, "--as-of", AS_OF]) == 1  # lock gone: the cycle runs


def test_two_cycles_at_once_make_one_decision(cycled, mlflow_client, tmp_path):
    cfg, args = cycled("cycle-concurrent")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()}
    cmd = [sys.executable, "-m", "src.cycle", *args, "--as-of", AS_OF]
    procs = [
        subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]  # (stdout, stderr) each
    results = [
        (p.returncode, out, err[-3000:]) for p, (out, err) in zip(procs, outputs, strict=True)
    ]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    loser = next(out for code, out, _ in results if code == 0)
    assert "another cycle is running" in loser or "already ran" in loser
    assert len(versions_of(mlflow_client, cfg.registry.model_name)) == 2  # champion + one


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--as-of", "2012-12-31"], "no month of the data [1, 2, 3] has ended by then"),
        (["--as-of", AS_OF, "--config", "configs/missing.yml"], "config file not found"),
    ],
)
def test_errors_exit_2_with_a_clear_message(smoke_pipeline, argv, message, caplog):
    assert cycle.main(argv) == 2
    assert message in caplog.text


def test_a_model_not_in_the_registry_is_an_error(cycled, tmp_path, caplog):
    path = tmp_path / "unknown.yml"
    path.write_text(yaml.safe_dump(named("never-registered").model_dump(mode="json")))
    assert cycle.main(["--config", str(path), "--as-of", AS_OF]) == 2
    assert "never-registered: not in the registry; run `make pipeline` first" in caplog.text


def test_the_cycle_reports_live_figures_from_the_log_joined_with_outcomes(
    cycled, mlflow_client, smoke_pipeline, tmp_path, monkeypatch, capsys
):
    """February scored through the prediction logger with flight numbers, outcomes for most
    of those flights (one cancelled), a few predictions without a flight number."""
    from src.serving.prediction_log import PredictionLogger

    monkeypatch.setenv("FD_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "processed").symlink_to(smoke_pipeline.processed)
    cfg, args = cycled("cycle-live")
    paths = get_paths()
    validation = pd.read_parquet(smoke_pipeline.processed / "validation.parquet")
    february = at_lead(validation, cfg.split.served_lead_hours).head(3000)  # each flight once
    champion = load_logged_model(f"models:/{cfg.registry.model_name}@{CHAMPION}")
    cols = request_columns(february)
    flights = {name: list(values) for name, values in cols.items()}  # as the API logs them
    flights["flight"] = february["flight"].tolist()
    for i in range(10):
        flights["flight"][i] = None  # no flight number: cannot be joined
    logger = PredictionLogger(paths.predictions)
    logger.log("r1", cfg.registry.model_name, "1", flights, champion.predict_proba(cols))
    logger.close()
    outcomes = february.iloc[10:2990][["year", "month", "day", "carrier", "flight", "origin"]]
    outcomes = outcomes.assign(dep_delay=february["delayed"].iloc[10:2990].map({1: 30.0, 0: 0.0}))
    outcomes.iloc[0, outcomes.columns.get_loc("dep_delay")] = None  # cancelled after all
    paths.outcomes.mkdir(parents=True)
    outcomes.to_csv(paths.outcomes / "outcomes-2013-02.csv", index=False)

    assert cycle.main([*args, "--as-of", AS_OF]) == 1
    live = read_json(paths.cycle_file(AS_OF, "summary.json"))["live"]
    assert live["counts"] == {"predictions": 3000, "joined": 2979, "cancelled": 1, "unmatched": 20}
    (figures,) = live["figures"]
    assert figures["role"] == "champion" and figures["version"] == "1" and figures["rows"] == 2979
    joined = february.iloc[11:2990]
    expected = champion.predict_proba(request_columns(joined))
    assert figures["mean_prediction"] == pytest.approx(expected.mean(), rel=1e-9)
    assert figures["observed_rate"] == pytest.approx(joined["delayed"].mean(), rel=1e-9)
    assert 0.55 < figures["roc_auc"] < 0.9
