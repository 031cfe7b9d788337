"""Helpers shared by the integration tests (tests/conftest.py is shared by every suite; what
only these tests need lives here and in tests/integration/conftest.py)."""

from __future__ import annotations

import subprocess

import pandas as pd
from mlflow import MlflowClient

from src.common.config import Config, load_config
from src.common.paths import ROOT, SMOKE_CONFIG
from src.common.schema import REQUEST_FIELDS

CFG = load_config(SMOKE_CONFIG)
ARGS = ["--config", str(SMOKE_CONFIG)]


def head_commit() -> str:
    """The repo's HEAD commit, as `git rev-parse HEAD` prints it."""
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# HEAD when the suite was collected, before the smoke pipeline trained: a commit made while
# the suite runs (by someone else working in the same checkout) moves HEAD after training.
SESSION_HEAD = head_commit()


def assert_is_head(git_commit: str | None) -> None:
    """Lineage names the code that ran: the repo's HEAD (when the suite started or now),
    suffixed -dirty when tracked files differ; never 'unknown', never another commit."""
    heads = {SESSION_HEAD, head_commit()}
    allowed = heads | {f"{h}-dirty" for h in heads}
    assert git_commit in allowed, f"git_commit {git_commit!r}, HEAD is {' or '.join(heads)}"


def runs_of(client: MlflowClient, role: str, experiment: str = CFG.train.experiment) -> list:
    """Finished runs of `role` in `experiment`, newest first."""
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment}"
    runs = client.search_runs(
        [exp.experiment_id],
        f"tags.role = '{role}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    assert runs, f"no finished {role} run in {experiment}"
    return runs


def named(name: str, cfg: Config = CFG) -> Config:
    """`cfg` with another registered model name (its own registry entry and alias history)."""
    return cfg.model_copy(update={"registry": cfg.registry.model_copy(update={"model_name": name})})


def records(frame: pd.DataFrame, fields=REQUEST_FIELDS) -> list[dict]:
    """Rows as request records: plain Python values, missing values as None."""
    rows = frame[list(fields)]
    return rows.astype(object).where(rows.notna(), None).to_dict("records")


def columns(recs: list[dict]) -> dict[str, list]:
    """Records as the model's input columns; a field a record leaves out is missing."""
    return {f: [r.get(f) for r in recs] for f in REQUEST_FIELDS}
