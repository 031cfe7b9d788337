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
import pytest

try:
    import pyspark  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise ImportError("pyspark missing: CI installs it with `make setup-spark`") from None
    pytest.skip("pyspark not installed (make setup-spark)", allow_module_level=True)

from src import predict
from src.batch import spark as engine
from src.batch.files import DECISION, MODEL_NAME, MODEL_VERSION, read_output_lineage
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


def test_bad_rows_are_rejected_as_the_local_engine_rejects_them(spark, tmp_path, flights):
    """Bad values in a CSV file split into several partitions (so row numbers must add up
    across them) and in a Parquet file: the same reject lines as the local engine's, and
    the rest scored."""
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
    csv.to_csv(tmp_path / "a.csv", index=False)
    typed = flights.iloc[4000:4100][[*REQUEST_FIELDS, "flight_id"]].reset_index(drop=True)
    typed.loc[7, "hour"] = 24
    typed.to_parquet(tmp_path / "b.parquet", index=False)
    files = [tmp_path / "a.csv", tmp_path / "b.parquet"]
    spark.conf.set("spark.sql.files.maxPartitionBytes", "64k")
    try:
        assert engine.read_file(spark, files[0]).rdd.getNumPartitions() >= 4
        uri = str(get_paths().champion)  # the export: an MLflow model folder
        about = {"model_name": NAME, "model_version": "export"}
        out, rejects = tmp_path / "spark", tmp_path / "spark.rejects.jsonl"
        summary = engine.score_files(files, uri, CFG.serve.threshold, out, rejects, about)
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert (summary.rows, summary.rejected, summary.files) == (4100, 6, 2)
    got = rejects_of(rejects)
    where = [(r["source_file"], r["source_row"], r["reject_field"]) for r in got]
    assert where == [
        (str(files[0]), 5, "month"),
        (str(files[0]), 1700, "carrier"),
        (str(files[0]), 2600, "distance"),
        (str(files[0]), 3000, "day"),
        (str(files[0]), 3999, "dest"),
        (str(files[1]), 7, "hour"),
    ]
    for line in got[:3] + got[4:5]:
        assert line["reject_reason"] == bad[line["source_row"]][2]
    assert got[3]["reject_reason"] == "2013-02-30 is not a date"
    ids = [str(r["values"]["flight_id"]) for r in got]  # text from the CSV, as read
    assert ids == ["5", "1700", "2600", "3000", "3999", "4007"]
    # the local engine's lines, value for value (as read: text from the CSV)
    local_rejects = tmp_path / "local.rejects.jsonl"
    code = run("--input", files[0], "--output", tmp_path / "l.parquet", "--rejects", local_rejects)
    assert code == 1
    assert got[:5] == rejects_of(local_rejects)
    scored = pd.read_parquet(out)
    assert len(scored) == 4100 - 6
    assert set(scored["flight_id"].astype(int)).isdisjoint({5, 1700, 2600, 3000, 3999, 4007})


def test_exit_codes_and_a_failed_run_leaves_the_last_output(spark, tmp_path, flights, monkeypatch):
    data = flights.iloc[:200][[*REQUEST_FIELDS, "flight_id"]].astype({"month": object})
    data.loc[3, "month"] = "13"
    data.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "scored"
    assert run("--input", tmp_path / "in.csv", "--output", out, "--engine", "spark") == 1
    assert len(rejects_of(tmp_path / "scored.rejects.jsonl")) == 1
    first = sorted(p.name for p in out.iterdir())
    # a second run over it replaces it; a run that fails leaves it as it was
    data.drop(columns=["carrier"]).to_csv(tmp_path / "broken.csv", index=False)
    args = ("--output", out, "--engine", "spark")
    assert run("--input", tmp_path / "broken.csv", *args) == 2
    assert sorted(p.name for p in out.iterdir()) == first
    assert run("--input", tmp_path / "in.csv", *args, "--model", "models:/nope") == 2
    assert sorted(p.name for p in out.iterdir()) == first

    def disk_full(*_):  # fails after the scored rows are written, before the rename
        raise OSError("No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(engine, "write_rejects", disk_full)
        assert run("--input", tmp_path / "in.csv", *args) == 2
    assert sorted(p.name for p in out.iterdir()) == first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert run("--input", tmp_path / "in.csv", *args) == 1
    assert sorted(p.name for p in out.iterdir()) != first  # new part files
    assert len(pd.read_parquet(out)) == 199
