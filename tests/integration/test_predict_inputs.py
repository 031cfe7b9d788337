"""`python -m src.predict` given inputs or a --model it cannot use: exit code 2 (the batch
job's "failed", as cron reads it), one line naming the file and what is wrong with it, and no
output written. The smoke pipeline's champion and test split; no mocks."""

from __future__ import annotations

import logging
import os

import pandas as pd
import pytest

from src import predict
from src.batch.files import read_output_lineage
from src.common.errors import SchemaError
from src.common.paths import SMOKE_CONFIG
from src.common.schema import REQUEST_FIELDS
from tests.api.support import CFG

pytestmark = pytest.mark.slow
NAME = CFG.registry.model_name


@pytest.fixture(scope="module")
def flights(test_split) -> pd.DataFrame:
    return test_split.head(50)[list(REQUEST_FIELDS)].reset_index(drop=True)


def failure(tmp_path, caplog, *args) -> str:
    """Run the job; assert exit 2 and nothing written; return the one error line."""
    out = tmp_path / "out" / "scored.parquet"
    argv = ["--config", str(SMOKE_CONFIG), "--no-progress", "--output", str(out), *args]
    with caplog.at_level(logging.INFO):
        assert predict.main([str(a) for a in argv]) == 2
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no file, no temp file
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    return errors[0]


def test_a_folder_without_data_files(tmp_path, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "_SUCCESS").touch()  # what Spark leaves beside its files: not data
    (folder / ".part-0.parquet.crc").touch()
    (folder / "._flights.parquet").write_bytes(b"\x00\x05\x16\x07")  # macOS on a USB drive
    (folder / "notes.txt").write_text("not data")
    line = failure(tmp_path, caplog, "--input", folder)
    assert line == f"PipelineError: {folder}: no .parquet or .csv files in this folder"


def test_a_file_of_another_format(tmp_path, flights, caplog):
    path = tmp_path / "flights.json"
    flights.to_json(path, orient="records")
    line = failure(tmp_path, caplog, "--input", path)
    assert line == f"PipelineError: {path}: not a .parquet or .csv file"


def test_a_parquet_file_that_is_not_parquet(tmp_path, caplog):
    path = tmp_path / "flights.parquet"
    path.write_bytes(b"year,month\n2013,1\n")  # a CSV under the wrong name
    line = failure(tmp_path, caplog, "--input", path)
    assert line.startswith(f"SchemaError: {path}: cannot read it (")


def test_a_csv_broken_after_its_header(tmp_path, flights, caplog):
    """The header is read first and is fine; a row further on has too many fields."""
    path = tmp_path / "flights.csv"
    flights.to_csv(path, index=False)
    with path.open("a") as f:
        f.write(",".join(["1"] * (len(REQUEST_FIELDS) + 3)) + "\n")
    line = failure(tmp_path, caplog, "--input", path)
    assert line.startswith(f"SchemaError: {path}: cannot read it (")


def test_a_csv_that_is_not_text(tmp_path, caplog):
    path = tmp_path / "flights.csv"
    path.write_bytes(b"\xff\xfe\x00y\x00e\x00a\x00r\x00\n\x00\x80\x81\x82")
    line = failure(tmp_path, caplog, "--input", path)
    assert line.startswith(f"SchemaError: {path}: cannot read it (")


@pytest.mark.parametrize("flag", ["--output", "--rejects"])
def test_an_output_that_is_a_folder(tmp_path, flights, caplog, flag):
    flights.to_parquet(tmp_path / "in.parquet", index=False)
    folder = tmp_path / "out"
    folder.mkdir()
    line = failure(tmp_path, caplog, "--input", tmp_path / "in.parquet", flag, folder)
    assert line == f"PipelineError: {flag} {folder}: is a folder, not a file"


@pytest.mark.parametrize("where", ["read-only folder", "file in the way"])
def test_an_output_that_cannot_be_written_fails_before_the_model_loads(
    tmp_path, flights, caplog, where
):
    flights.to_parquet(tmp_path / "in.parquet", index=False)
    blocked = tmp_path / "blocked"
    if where == "read-only folder":
        blocked.mkdir(mode=0o555)
        if os.access(blocked, os.W_OK):
            pytest.skip("this user writes in read-only folders (root)")
        reason = "Permission denied"
    else:
        blocked.write_text("a file where the output's folder would go")
        reason = "Not a directory"
    out = blocked / "scored" / "scored.parquet"
    line = failure(tmp_path, caplog, "--input", tmp_path / "in.parquet", "--output", out)
    assert line == f"PipelineError: --output {out}: cannot write in {blocked} ({reason})"
    assert "scoring" not in caplog.text  # the check came before the model was loaded
    assert not [r for r in caplog.records if r.name == "src.serving.loader"]


@pytest.mark.parametrize(("flag", "value"), [("--batch-rows", 0), ("--batch-rows", -5),
                                             ("--workers", 0)])  # fmt: skip
def test_a_count_below_one_is_refused_by_the_argument_parser(
    tmp_path, flights, capsys, flag, value
):
    flights.to_parquet(tmp_path / "in.parquet", index=False)
    argv = ["--input", tmp_path / "in.parquet", "--output", tmp_path / "out.parquet"]
    with pytest.raises(SystemExit) as exited:
        predict.main([str(a) for a in [*argv, flag, value]])
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error == f"python -m src.predict: error: argument {flag}: {value} is not 1 or more"
    assert list(tmp_path.iterdir()) == [tmp_path / "in.parquet"]


def test_a_model_folder_that_is_not_a_model(tmp_path, flights, caplog):
    flights.to_parquet(tmp_path / "in.parquet", index=False)
    folder = tmp_path / "model"
    folder.mkdir()
    line = failure(tmp_path, caplog, "--input", tmp_path / "in.parquet", "--model", folder)
    assert line == f"ModelNotFoundError: --model {folder}: not a model folder (no MLmodel file)"


def test_a_model_folder_of_another_project(tmp_path, flights, caplog):
    flights.to_parquet(tmp_path / "in.parquet", index=False)
    folder = tmp_path / "sklearn-model"
    folder.mkdir()
    (folder / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n    data: model.pkl\n"
    )
    line = failure(tmp_path, caplog, "--input", tmp_path / "in.parquet", "--model", folder)
    assert line == f"ModelNotFoundError: --model {folder}: not a model this project logged"


def test_an_alias_that_is_not_set(tmp_path, flights, caplog):
    flights.to_parquet(tmp_path / "in.parquet", index=False)
    uri = f"models:/{NAME}@nobody"
    line = failure(tmp_path, caplog, "--input", tmp_path / "in.parquet", "--model", uri)
    assert line == f"ModelNotFoundError: --model {uri}: no alias @nobody on {NAME}"


def test_output_lineage_of_a_file_or_folder_that_has_none(tmp_path, flights):
    """`read_output_lineage` (how a reader finds which model scored a file) names what is
    missing: a plain Parquet file without the job's metadata, a folder without its file."""
    plain = tmp_path / "plain.parquet"
    flights.to_parquet(plain, index=False)
    with pytest.raises(SchemaError, match=f"{plain}: no flight_delay lineage in its metadata"):
        read_output_lineage(plain)
    with pytest.raises(SchemaError, match=f"{tmp_path}: no _lineage.json in this folder"):
        read_output_lineage(tmp_path)
