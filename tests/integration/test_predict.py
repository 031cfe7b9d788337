"""The batch scoring job, `python -m src.predict`, on the smoke pipeline's real test split:
what it writes (pass-through columns, the logged model's probabilities, the decision, the
lineage), folders of Parquet and CSV, bad rows set aside, and errors that write nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from src import predict
from src.batch.files import DECISION, read_lineage
from src.common.config import load_config
from src.common.paths import ROOT, SMOKE_CONFIG
from src.common.schema import PREDICTION, REQUEST_FIELDS

CFG = load_config(SMOKE_CONFIG)
NAME = CFG.registry.model_name


@pytest.fixture(scope="module")
def flights(test_split) -> pd.DataFrame:
    """3,000 test flights with an id that passes through, and the observed label."""
    frame = test_split.head(3000).reset_index(drop=True)
    return frame[[*REQUEST_FIELDS, "delayed"]].assign(flight_id=[f"f{i}" for i in range(3000)])


@pytest.fixture(scope="module")
def champion(mlflow_client):
    return mlflow_client.get_model_version_by_alias(NAME, CFG.registry.alias)


@pytest.fixture(scope="module")
def pyfunc_scores(flights, champion) -> np.ndarray:
    """What the logged model itself says, through MLflow's pyfunc."""
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/{champion.version}")
    return model.predict(flights[list(REQUEST_FIELDS)])[PREDICTION].to_numpy()


def run(*args: str) -> int:
    return predict.main(["--config", str(SMOKE_CONFIG), "--no-progress", *map(str, args)])


def test_a_parquet_file_is_scored_by_the_champion_with_its_lineage(
    tmp_path, flights, champion, pyfunc_scores
):
    flights.to_parquet(tmp_path / "in.parquet", index=False)
    out = tmp_path / "out" / "scored.parquet"
    assert run("--input", tmp_path / "in.parquet", "--output", out) == 0
    scored = pd.read_parquet(out)
    assert scored.columns.tolist() == [
        "delayed", "flight_id", PREDICTION, DECISION, "model_name", "model_version"
    ]  # fmt: skip
    assert scored["flight_id"].tolist() == flights["flight_id"].tolist()  # row for row
    np.testing.assert_allclose(scored[PREDICTION], pyfunc_scores, rtol=0, atol=1e-12)
    decided = scored[PREDICTION] >= CFG.serve.threshold
    assert (scored[DECISION] == decided).all() and 0 < decided.mean() < 1
    assert set(scored["model_version"]) == {str(champion.version)}
    lineage = read_lineage(out)
    assert lineage["run_id"] == champion.run_id
    assert lineage["model_uri"] == f"models:/{NAME}/{champion.version}"
    assert lineage["threshold"] == CFG.serve.threshold and lineage["engine"] == "local"
    assert len(lineage["data_manifest_sha256"]) == 64 and lineage["git_commit"]
    assert (tmp_path / "out" / "scored.rejects.jsonl").read_text() == ""


def test_a_folder_of_parquet_and_csv_files_scores_alike(tmp_path, flights, pyfunc_scores):
    folder = tmp_path / "in"
    folder.mkdir()
    flights.iloc[:1000].to_parquet(folder / "a.parquet", index=False)
    flights.iloc[1000:].to_csv(folder / "b.csv", index=False)
    (folder / "_SUCCESS").write_text("")  # markers other tools leave are not inputs
    out = tmp_path / "scored.parquet"
    assert run("--input", folder, "--output", out, "--batch-rows", 700) == 0
    scored = pd.read_parquet(out)
    assert scored["flight_id"].tolist() == flights["flight_id"].tolist()
    np.testing.assert_allclose(scored[PREDICTION], pyfunc_scores, rtol=0, atol=1e-12)


def test_a_csv_with_a_byte_order_mark_reads_as_without(tmp_path, flights, pyfunc_scores):
    """Spreadsheets save "CSV UTF-8" with a byte-order mark before the first column's name."""
    flights.iloc[:200].to_csv(tmp_path / "in.csv", index=False, encoding="utf-8-sig")
    assert (tmp_path / "in.csv").read_bytes().startswith(b"\xef\xbb\xbfyear,")
    out = tmp_path / "scored.parquet"
    assert run("--input", tmp_path / "in.csv", "--output", out) == 0
    scored = pd.read_parquet(out)
    assert scored["flight_id"].tolist() == flights["flight_id"].iloc[:200].tolist()
    np.testing.assert_allclose(scored[PREDICTION], pyfunc_scores[:200], rtol=0, atol=1e-12)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_an_input_without_rows_gives_an_empty_output_and_exit_0(tmp_path, flights, suffix, capsys):
    """A header and no rows is not an error (a quiet day's file): --help says what happens."""
    source = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        flights.iloc[:0].to_csv(source, index=False)
    else:
        flights.iloc[:0].to_parquet(source, index=False)
    out = tmp_path / "scored.parquet"
    assert run("--input", source, "--output", out) == 0
    scored = pq.read_table(out)
    assert scored.num_rows == 0 and scored.column_names[-4:] == [
        PREDICTION, DECISION, "model_name", "model_version"
    ]  # fmt: skip
    assert read_lineage(out)["engine"] == "local"
    assert (tmp_path / "scored.rejects.jsonl").read_text() == ""
    with pytest.raises(SystemExit):
        predict.parse_args(["--help"])
    usage = " ".join(capsys.readouterr().out.split())
    assert "one without rows gives an empty output and exit 0" in usage


def test_bad_rows_go_to_the_rejects_with_field_and_reason(tmp_path, flights, pyfunc_scores):
    csv = flights.iloc[:50].astype(object)
    csv.loc[3, "month"] = 13
    csv.loc[7, "carrier"] = "united"
    csv.loc[11, "distance"] = "far"
    csv.loc[20, "hour"] = None
    csv.loc[30, ["month", "day"]] = [2, 30]
    csv.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "scored.parquet"
    assert run("--input", tmp_path / "in.csv", "--output", out, "--batch-rows", 16) == 1
    lines = (tmp_path / "scored.rejects.jsonl").read_text().splitlines()
    rejects = [json.loads(line) for line in lines]
    got = [(r["source_row"], r["reject_field"], r["values"]["flight_id"]) for r in rejects]
    assert got == [(3, "month", "f3"), (7, "carrier", "f7"), (11, "distance", "f11"),
                   (20, "hour", "f20"), (30, "day", "f30")]  # fmt: skip
    assert rejects[2]["reject_reason"] == "'far' is not a number"
    assert rejects[2]["values"]["distance"] == "far" and rejects[3]["values"]["hour"] is None
    assert rejects[0]["source_file"] == str(tmp_path / "in.csv")
    scored = pd.read_parquet(out)
    kept = [i for i in range(50) if i not in (3, 7, 11, 20, 30)]
    assert scored["flight_id"].tolist() == [f"f{i}" for i in kept]
    np.testing.assert_allclose(scored[PREDICTION], pyfunc_scores[kept], rtol=0, atol=1e-12)


def test_a_text_value_deep_in_a_large_csv_is_one_rejected_row(tmp_path, flights):
    """CSV types are inferred from the first block (~1 MB): a value further down that does
    not fit must still be a row's problem, not the file's."""
    big = pd.concat([flights] * 5, ignore_index=True).astype({"distance": object})
    big.loc[len(big) - 5, "distance"] = "far"
    big.to_csv(tmp_path / "in.csv", index=False)
    assert (tmp_path / "in.csv").stat().st_size > 2**20
    out = tmp_path / "scored.parquet"
    assert run("--input", tmp_path / "in.csv", "--output", out) == 1
    [reject] = [json.loads(x) for x in (tmp_path / "scored.rejects.jsonl").open()]
    assert (reject["source_row"], reject["reject_field"]) == (len(big) - 5, "distance")
    assert pq.read_metadata(out).num_rows == len(big) - 1


def test_a_csv_pass_through_column_is_text_whatever_it_holds_further_down(tmp_path, flights):
    """Arrow would type a column from the first ~1 MB: one empty at the top and filled with
    text further down would fail the file. Every CSV column is read as text instead."""
    big = pd.concat([flights] * 5, ignore_index=True).assign(note="")
    big.loc[len(big) - 1, "note"] = "late change"
    big.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "scored.parquet"
    assert run("--input", tmp_path / "in.csv", "--output", out) == 0
    scored = pd.read_parquet(out, columns=["note", "delayed"])
    assert scored["note"].iloc[-1] == "late change" and scored["note"].iloc[0] is None
    assert scored["delayed"].iloc[:3].tolist() == flights["delayed"].iloc[:3].astype(str).tolist()


def test_rejects_are_strict_json_and_numbered_by_position(tmp_path, flights):
    """An infinite value is written as text, and a pandas index saved in the file (here of
    labels) is not what numbers the rows: their position in the file is."""
    frame = flights.iloc[:20].copy()
    frame.loc[4, "temp"] = np.inf
    frame.set_index("flight_id").iloc[::-1].to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "scored.parquet"
    assert run("--input", tmp_path / "in.parquet", "--output", out) == 1
    line = (tmp_path / "scored.rejects.jsonl").read_text()
    reject = json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert (reject["source_row"], reject["reject_field"]) == (15, "temp")
    assert reject["values"]["temp"] == "inf" and reject["values"]["flight_id"] == "f4"


def test_one_thread_and_several_write_the_same_files(tmp_path, flights):
    """--workers 1 is the plain path (one thread, batch after batch); more threads must
    write the same rows in the same order, rejects included."""
    frame = pd.concat([flights] * 3, ignore_index=True).astype({"carrier": object})
    frame.loc[[10, 4000, 8999], "carrier"] = "??"
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    outputs = {}
    for workers in (1, 3):
        out = tmp_path / f"w{workers}.parquet"
        args = ["--input", tmp_path / "in.parquet", "--output", out, "--batch-rows", 1000]
        assert run(*args, "--workers", workers) == 1
        rejects = (tmp_path / f"w{workers}.rejects.jsonl").read_text()
        outputs[workers] = (pq.read_table(out), rejects)
    (plain, plain_rejects), (threaded, threaded_rejects) = outputs[1], outputs[3]
    assert plain.num_rows == len(frame) - 3 and plain.equals(threaded)
    assert plain_rejects == threaded_rejects and plain_rejects.count("\n") == 3


def test_a_model_folder_and_an_alias_uri_score_alike(tmp_path, flights, smoke_pipeline):
    flights.iloc[:500].to_parquet(tmp_path / "in.parquet", index=False)
    by_alias, by_folder = tmp_path / "alias.parquet", tmp_path / "folder.parquet"
    uri = f"models:/{NAME}@{CFG.registry.alias}"
    assert run("--input", tmp_path / "in.parquet", "--output", by_alias, "--model", uri) == 0
    folder = smoke_pipeline.champion  # the export: an MLflow model folder
    assert run("--input", tmp_path / "in.parquet", "--output", by_folder, "--model", folder) == 0
    a, b = pd.read_parquet(by_alias), pd.read_parquet(by_folder)
    np.testing.assert_array_equal(a[PREDICTION], b[PREDICTION])
    assert read_lineage(by_folder)["run_id"] == read_lineage(by_alias)["run_id"]


def test_only_the_model_fields_are_needed(tmp_path, flights):
    required = ["year", "month", "day", "hour", "minute", "carrier", "origin", "dest", "distance"]
    flights[required].iloc[:100].to_parquet(tmp_path / "in.parquet", index=False)
    out = tmp_path / "scored.parquet"
    assert run("--input", tmp_path / "in.parquet", "--output", out) == 0
    assert pq.read_metadata(out).num_rows == 100


@pytest.mark.parametrize(
    ("make_input", "extra", "message"),
    [
        (lambda d, f: d / "missing.parquet", [], "no such file or folder"),
        (lambda d, f: f.drop(columns=["carrier"]), [], r"required column\(s\) \['carrier'\]"),
        (lambda d, f: f.rename(columns={"delayed": "delay_probability"}), [], "overwritten"),
        (lambda d, f: f, ["--model", "models:/nope"], "expected models:/"),
        (lambda d, f: f, ["--model", f"models:/{NAME}/999"], "ModelNotFoundError"),
    ],
    ids=["no-input", "no-carrier", "clashing-column", "bad-uri", "no-version"],
)
def test_errors_exit_2_name_the_cause_and_leave_the_last_output(
    tmp_path, flights, make_input, extra, message, caplog
):
    made = make_input(tmp_path, flights.iloc[:100])
    source = made if not isinstance(made, pd.DataFrame) else tmp_path / "in.parquet"
    if isinstance(made, pd.DataFrame):
        made.to_parquet(source, index=False)
    out = tmp_path / "scored.parquet"
    out.write_bytes(b"last run's output")
    assert run("--input", source, "--output", out, *extra) == 2
    assert any(pd.Series([r.getMessage() for r in caplog.records]).str.contains(message))
    assert out.read_bytes() == b"last run's output"  # nothing half-written replaced it
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_second_file_that_fails_mid_run_leaves_nothing(tmp_path, flights):
    folder = tmp_path / "in"
    folder.mkdir()
    flights.iloc[:100].to_parquet(folder / "a.parquet", index=False)
    flights.iloc[:100].drop(columns=["origin"]).to_parquet(folder / "b.parquet", index=False)
    out = tmp_path / "scored.parquet"
    assert run("--input", folder, "--output", out) == 2
    assert list(tmp_path.iterdir()) == [folder]


@pytest.mark.parametrize(
    ("output", "rejects", "message"),
    [
        ("in/scored.parquet", None, "inside the input folder"),
        ("in/a.parquet", None, "is an input file"),
        ("scored.parquet", "in/a.parquet", "is an input file"),
        ("scored.parquet", "scored.parquet", "the same file as --output"),
    ],
)
def test_no_output_may_replace_an_input_or_the_other_output(
    tmp_path, flights, output, rejects, message, caplog
):
    (tmp_path / "in").mkdir()
    flights.iloc[:10].to_parquet(tmp_path / "in" / "a.parquet", index=False)
    before = (tmp_path / "in" / "a.parquet").read_bytes()
    extra = ["--rejects", tmp_path / rejects] if rejects else []
    assert run("--input", tmp_path / "in", "--output", tmp_path / output, *extra) == 2
    assert message in caplog.text
    assert (tmp_path / "in" / "a.parquet").read_bytes() == before
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.parquet", "in"]


@pytest.mark.slow
def test_the_command_line_prints_progress_and_one_summary_line(tmp_path, flights):
    flights.to_parquet(tmp_path / "in.parquet", index=False)
    cmd = [sys.executable, "-m", "src.predict", "--config", str(SMOKE_CONFIG)]
    cmd += ["--input", str(tmp_path / "in.parquet"), "--output", str(tmp_path / "o.parquet")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "rows/s" in done.stderr  # tqdm's bar
    summary = [line for line in done.stderr.splitlines() if "rows from 1 file(s)" in line]
    assert len(summary) == 1 and "3,000 scored, 0 rejected" in summary[0]
