"""The batch job's Spark engine (`python -m src.predict --engine spark`, src/batch/spark.py)
on local[2], on the smoke pipeline's real test split and champion: the same probabilities
and decisions as the local engine, folders of Parquet and CSV, bad rows rejected with the
local engine's lines, exit codes. One Spark session (loopback, no UI) for all of them.

pyspark is an extra (make setup-spark): without it these tests are skipped, except in CI,
which installs it, where its absence fails them."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

try:
    import pyspark  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise ImportError("pyspark missing: CI installs it with `make setup-spark`") from None
    pytest.skip("pyspark not installed (make setup-spark)", allow_module_level=True)

from src import predict
from src.batch import spark as engine
from src.batch.files import BATCH_ROWS, DECISION, MODEL_NAME, MODEL_VERSION, read_output_lineage
from src.common.config import load_config
from src.common.paths import SMOKE_CONFIG, get_paths
from src.common.schema import PREDICTION, REQUEST_FIELDS

pytestmark = pytest.mark.slow
CFG = load_config(SMOKE_CONFIG)
NAME = CFG.registry.model_name
REQUIRED = ["year", "month", "day", "hour", "minute", "carrier", "origin", "dest", "distance"]


@pytest.fixture(scope="session")
def spark():
    """The job's own local session (src.batch.spark.spark_session): local[2] on 127.0.0.1,
    no web UI. The job finds it (getOrCreate) and leaves it running."""
    start = time.perf_counter()
    session, created = engine.spark_session("local[2]")
    print(f"\nSpark session started in {time.perf_counter() - start:.1f} s")
    assert created and session.sparkContext.master == "local[2]"
    conf = session.sparkContext.getConf()
    assert conf.get("spark.ui.enabled") == "false" and session.sparkContext.uiWebUrl is None
    assert conf.get("spark.driver.host") == conf.get("spark.driver.bindAddress") == "127.0.0.1"
    yield session
    session.stop()


@pytest.fixture(scope="module")
def flights(test_split) -> pd.DataFrame:
    """10,000 test flights as the processed split holds them (a UTC timestamp in pandas'
    nanoseconds, the label, the flight number) with an id that passes through."""
    frame = test_split.head(10_000).reset_index(drop=True)
    return frame.assign(flight_id=np.arange(len(frame), dtype="int64"))


@pytest.fixture(scope="module")
def champion(mlflow_client):
    return mlflow_client.get_model_version_by_alias(NAME, CFG.registry.alias)


def run(*args) -> int:
    return predict.main(["--config", str(SMOKE_CONFIG), "--no-progress", *map(str, args)])


def rejects_of(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def files_of(folder) -> list[tuple]:
    """The folder's files: name, inode and change time (a file renamed over one differs)."""
    return sorted((p.name, p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir())


def test_spark_scores_as_the_local_engine(spark, tmp_path, flights, champion):
    """The parity test: 10,000 rows, joined on the id, both jobs run by src.predict."""
    flights.to_parquet(tmp_path / "in.parquet", index=False)
    local_out, spark_out = tmp_path / "local.parquet", tmp_path / "spark"
    assert run("--input", tmp_path / "in.parquet", "--output", local_out) == 0
    start = time.perf_counter()
    assert run("--input", tmp_path / "in.parquet", "--output", spark_out, "--engine", "spark") == 0
    print(f"\nSpark job, 10,000 rows: {time.perf_counter() - start:.1f} s")
    a, b = pd.read_parquet(local_out), pd.read_parquet(spark_out)
    assert b.columns.tolist() == a.columns.tolist()  # pass-through, then the results
    assert len(b) == len(a) == 10_000
    both = a.merge(b, on="flight_id", suffixes=("_local", "_spark"), validate="1:1")
    assert len(both) == 10_000
    gap = (both[f"{PREDICTION}_local"] - both[f"{PREDICTION}_spark"]).abs().max()
    print(f"parity: max |local - spark| = {gap:.3g}")
    assert gap <= 1e-9
    assert (both[f"{DECISION}_local"] == both[f"{DECISION}_spark"]).all()
    assert 0 < both[f"{DECISION}_spark"].mean() < 1
    for passed in ("time_hour", "delayed", "flight"):  # as read, nanosecond timestamps too
        assert (both[f"{passed}_local"] == both[f"{passed}_spark"]).all(), passed
    assert set(b[MODEL_NAME]) == {NAME} and set(b[MODEL_VERSION]) == {str(champion.version)}
    lineage = read_output_lineage(spark_out)
    assert lineage["engine"] == "spark" and lineage["run_id"] == champion.run_id
    assert lineage["model_uri"] == f"models:/{NAME}/{champion.version}"
    assert (tmp_path / "spark.rejects.jsonl").read_text() == ""
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


def test_a_folder_of_parquet_and_csv_with_optional_fields_left_out(spark, tmp_path, flights):
    """A Parquet file with every field and a CSV file with the required ones only (tailnum
    and the weather absent: missing, as in the API); Spark scores them as the local job."""
    folder = tmp_path / "in"
    folder.mkdir()
    part = flights.iloc[:3000][[*REQUEST_FIELDS, "flight_id"]]
    part.iloc[:1000].to_parquet(folder / "a.parquet", index=False)
    part.iloc[1000:][[*REQUIRED, "flight_id"]].to_csv(folder / "b.csv", index=False)
    (folder / "_SUCCESS").write_text("")  # other tools' markers are not inputs
    local_out, spark_out = tmp_path / "local.parquet", tmp_path / "spark"
    assert run("--input", folder, "--output", local_out) == 0
    assert run("--input", folder, "--output", spark_out, "--engine", "spark") == 0
    a = pd.read_parquet(local_out)
    b = pd.read_parquet(spark_out).sort_values("flight_id", ignore_index=True)
    assert b["flight_id"].tolist() == a["flight_id"].tolist() == list(range(3000))
    np.testing.assert_allclose(b[PREDICTION], a[PREDICTION], rtol=0, atol=1e-9)
    assert (b[DECISION] == a[DECISION]).all()


def test_work_units_split_large_row_groups_and_keep_file_and_row_order(tmp_path):
    """A CSV file is one unit; a Parquet file one per row group, a large group in slices."""
    n = engine.UNIT_BATCHES
    group = n * BATCH_ROWS + 5  # a unit's batches and one more
    pq.write_table(pa.table({"x": np.arange(group + 10)}), tmp_path / "a.parquet", group)
    (tmp_path / "b.csv").write_text("x\n1\n")
    units = engine.work_units([tmp_path / "a.parquet", tmp_path / "b.csv"])
    groups = [(u.row_group, u.first_row, u.start, u.stop) for u in units]
    assert groups == [(0, 0, 0, n), (0, 0, n, 2 * n), (1, group, 0, n), (None, 0, 0, None)]


def test_bad_rows_are_rejected_as_the_local_engine_rejects_them(
    spark, tmp_path, flights, champion, monkeypatch
):
    """Bad values in a CSV file and in a Parquet file of two row groups, each split in two
    tasks (so a row's number must come from its file, not from its task): the same
    reject lines as the local engine's, in file and row order, and the rest scored."""
    csv = flights.iloc[:4000][[*REQUEST_FIELDS, "flight_id"]].astype(object)
    bad = {
        5: ("month", 13, "13 is above the maximum 12"),
        1700: ("carrier", "u!", "'u!' does not match ^[A-Z0-9]{2}$"),
        2600: ("distance", "far", "'far' is not a number"),
        3999: ("dest", None, "missing"),
    }
    for row, (field, value, _) in bad.items():
        csv.loc[row, field] = value
    csv.loc[3000, ["month", "day"]] = [2, 30]  # each field fine, not a date
    folder = tmp_path / "in"
    folder.mkdir()
    csv.to_csv(folder / "a.csv", index=False)
    n, group = 2 * BATCH_ROWS + 5000, BATCH_ROWS + 3000  # two row groups, two batches each
    typed = flights[[*REQUEST_FIELDS, "flight_id"]].sample(n, replace=True, random_state=1)
    typed = typed.reset_index(drop=True).assign(flight_id=np.arange(n))
    bad_hours = [7, BATCH_ROWS + 9, group + 11, group + BATCH_ROWS + 5]  # one per task
    typed.loc[bad_hours, "hour"] = 24
    pq.write_table(pa.Table.from_pandas(typed), folder / "b.parquet", row_group_size=group)
    files = [folder / "a.csv", folder / "b.parquet"]
    monkeypatch.setattr(engine, "UNIT_BATCHES", 1)
    assert len(engine.work_units(files)) == 5
    uri = str(get_paths().champion)  # the export: an MLflow model folder
    about = {"model_name": NAME, "model_version": str(champion.version)}  # as src.predict's
    out, rejects = tmp_path / "spark", tmp_path / "spark.rejects.jsonl"
    summary = engine.score_files(files, uri, CFG.serve.threshold, out, rejects, about)
    assert (summary.rows, summary.rejected, summary.files) == (4000 + n, 9, 2)
    got = rejects_of(rejects)
    where = [(r["source_file"], r["source_row"], r["reject_field"]) for r in got]
    assert where == [
        (str(files[0]), 5, "month"),
        (str(files[0]), 1700, "carrier"),
        (str(files[0]), 2600, "distance"),
        (str(files[0]), 3000, "day"),
        (str(files[0]), 3999, "dest"),
        *[(str(files[1]), row, "hour") for row in bad_hours],
    ]
    for line in got[:3] + got[4:5]:
        assert line["reject_reason"] == bad[line["source_row"]][2]
    assert got[3]["reject_reason"] == "2013-02-30 is not a date"
    ids = [r["values"]["flight_id"] for r in got]
    assert ids == ["5", "1700", "2600", "3000", "3999", *bad_hours]  # as read: CSV text
    # the local engine's lines, line for line
    local_rejects = tmp_path / "local.rejects.jsonl"
    code = run("--input", folder, "--output", tmp_path / "l.parquet", "--rejects", local_rejects)
    assert code == 1
    assert got == rejects_of(local_rejects)
    scored = pd.read_parquet(out)  # the part files in name order: file, then row order
    assert len(scored) == 4000 + n - 9
    assert scored.equals(pd.read_parquet(tmp_path / "l.parquet"))


def test_exit_codes_and_a_failed_run_leaves_the_last_output(
    spark, tmp_path, flights, monkeypatch, caplog
):
    data = flights.iloc[:200][[*REQUEST_FIELDS, "flight_id"]].astype({"month": object})
    data.loc[3, "month"] = "13"
    data.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "scored"
    assert run("--input", tmp_path / "in.csv", "--output", out, "--engine", "spark") == 1
    assert len(rejects_of(tmp_path / "scored.rejects.jsonl")) == 1
    first = files_of(out)
    # a second run over it replaces it; a run that fails leaves it as it was
    data.drop(columns=["carrier"]).to_csv(tmp_path / "broken.csv", index=False)
    args = ("--output", out, "--engine", "spark")
    assert run("--input", tmp_path / "broken.csv", *args) == 2
    assert files_of(out) == first
    assert run("--input", tmp_path / "in.csv", *args, "--model", "models:/nope") == 2
    assert files_of(out) == first
    # a row the reader cannot parse, found by a task: the file's error, not a traceback
    lines = (tmp_path / "in.csv").read_text().splitlines()
    (tmp_path / "ragged.csv").write_text("\n".join([*lines[:150], lines[150] + ",1", ""]))
    assert run("--input", tmp_path / "ragged.csv", *args) == 2
    assert "ragged.csv: cannot read it (CSV parse error" in caplog.text
    assert "Traceback" not in caplog.text
    assert files_of(out) == first

    def disk_full(*_):  # fails after the scored rows are written, before the rename
        raise OSError("No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(engine, "join_rejects", disk_full)
        assert run("--input", tmp_path / "in.csv", *args) == 2
    assert files_of(out) == first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert run("--input", tmp_path / "in.csv", *args) == 1
    assert files_of(out) != first  # new files, renamed into place
    assert len(pd.read_parquet(out)) == 199
