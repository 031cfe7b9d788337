"""`python -m src.predict --enrich` on the smoke pipeline: flight keys in, each flight found in
the offline store's timetable and built as of its moment exactly as training built the
processed rows, then scored by the normal job; keys that name no departure, or two, or a
moment not before the flight left, rejected with their row, field and reason."""

from __future__ import annotations

import json
import logging
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from src import predict
from src.batch.files import DECISION, read_lineage
from src.common.io import sha256_file
from src.common.paths import SMOKE_CONFIG
from src.common.schema import PREDICTION, REQUEST_FIELDS
from src.featurestore.enrich import enrich
from src.featurestore.offline import load_views

RESULTS = [PREDICTION, DECISION, "model_name", "model_version"]


@pytest.fixture(scope="module")
def store(smoke_pipeline) -> dict[str, pd.DataFrame]:
    """The offline store the smoke pipeline's features stage wrote (the whole year)."""
    return load_views(smoke_pipeline)


def key_columns(rows: pd.DataFrame, origin: bool = False) -> pd.DataFrame:
    """The keys of processed rows: carrier, flight, New York date (and origin), and an id."""
    day = [f"{y:04d}-{m:02d}-{d:02d}" for y, m, d in rows[["year", "month", "day"]].to_numpy()]
    keys = pd.DataFrame({"carrier": rows["carrier"], "flight": rows["flight"], "date": day})
    if origin:
        keys["origin"] = rows["origin"]
    return keys.assign(flight_id=[f"f{i}" for i in range(len(rows))]).reset_index(drop=True)


def same_fields(records: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """The REQUEST fields that differ: numbers beyond 1e-9, text, or missing on one side."""
    differ = []
    for field in REQUEST_FIELDS:
        a, b = records[field].reset_index(drop=True), rows[field].reset_index(drop=True)
        if a.dtype == object or b.dtype == object:
            equal = (a.isna() & b.isna()) | (a == b)
        else:
            close = np.isclose(a.astype(float), b.astype(float), rtol=0, atol=1e-9)
            equal = (a.isna() & b.isna()) | close
        if not equal.all():
            differ.append(field)
    return differ


def run(*args) -> int:
    return predict.main(["--config", str(SMOKE_CONFIG), "--no-progress", *map(str, args)])


@pytest.mark.slow  # every row of the test split
def test_the_enriched_record_is_the_processed_row(store, test_split):
    """Training's examples and the batch job's enrichment are one record: at 2 h by the keys
    alone, and at every lead by the keys, origin and the processed row's own moment."""
    at_2h = test_split[test_split["lead_hours"] == 2].reset_index(drop=True)
    got = enrich(key_columns(at_2h), store, lead_hours=2)
    assert got.rejects.empty and len(got.records) == len(at_2h) > 20_000
    assert same_fields(got.records, at_2h) == []
    assert got.records["as_of"].equals(at_2h["as_of"])

    keys = key_columns(test_split, origin=True).assign(as_of=test_split["as_of"].to_numpy())
    got = enrich(keys, store, as_of_column="as_of")
    assert got.rejects.empty and len(got.records) == len(test_split)
    assert same_fields(got.records, test_split) == []
    assert sorted(got.records["lead_hours"].unique()) == [1, 2, 4, 6, 24]


@pytest.fixture(scope="module")
def sample(test_split) -> pd.DataFrame:
    """3,000 processed test rows: at 2 h, and at every lead."""
    at_2h = test_split[test_split["lead_hours"] == 2].reset_index(drop=True)
    mixed = test_split.sample(3000, random_state=7).sort_index().reset_index(drop=True)
    return {"2h": at_2h.iloc[::9].head(3000).reset_index(drop=True), "mixed": mixed}


def scored_rows(tmp_path, rows: pd.DataFrame) -> pd.DataFrame:
    """What the normal job says of the processed rows themselves."""
    frame = rows[list(REQUEST_FIELDS)].assign(flight_id=[f"f{i}" for i in range(len(rows))])
    frame.to_parquet(tmp_path / "rows.parquet", index=False)
    assert run("--input", tmp_path / "rows.parquet", "--output", tmp_path / "rows-out.parquet") == 0
    return pd.read_parquet(tmp_path / "rows-out.parquet")


def test_keys_at_a_lead_score_as_the_processed_rows(tmp_path, sample, smoke_pipeline, caplog):
    rows = sample["2h"]
    key_columns(rows).to_csv(tmp_path / "keys.csv", index=False)
    out = tmp_path / "out" / "scored.parquet"
    with caplog.at_level(logging.INFO):
        assert run("--input", tmp_path / "keys.csv", "--output", out, "--enrich", "--lead", 2) == 0
    scored, expected = pd.read_parquet(out), scored_rows(tmp_path, rows)
    assert scored.columns.tolist() == [
        "flight",
        "date",
        "flight_id",
        "sched_dep",
        "as_of",
        *RESULTS,
    ]
    assert scored["flight_id"].tolist() == expected["flight_id"].tolist()  # row for row
    np.testing.assert_array_equal(scored[PREDICTION], expected[PREDICTION])
    assert scored[DECISION].equals(expected[DECISION]) and 0 < scored[DECISION].mean() < 1
    assert scored["as_of"].equals(rows["as_of"]) and scored["flight"].iloc[0] == str(
        rows["flight"][0]
    )
    assert (tmp_path / "out" / "scored.rejects.jsonl").read_text() == ""
    lineage, plain = read_lineage(out), read_lineage(tmp_path / "rows-out.parquet")
    assert lineage["run_id"] == plain["run_id"] and lineage["model_uri"] == plain["model_uri"]
    assert lineage["enrichment"] == {
        "lead_hours": 2.0,
        "as_of_column": None,
        "features_manifest_sha256": sha256_file(smoke_pipeline.features_manifest),
    }
    logged = [r.getMessage() for r in caplog.records if r.name == "predict"]
    assert any(m.startswith("offline store: 5 views, ") for m in logged), logged
    enriched = f"enriched {tmp_path / 'keys.csv'}: 3,000 rows in "
    assert any(m.startswith(enriched) and m.endswith("3,000 found, 0 rejected") for m in logged)
    assert logged[-1].startswith("3,000 rows from 1 file(s) in ")


def test_keys_with_their_own_moments_score_as_the_processed_rows(tmp_path, sample):
    """A Parquet file: the flight number a number, the date a date, the moment a zoned
    timestamp (New York time here), each row at its own lead."""
    rows = sample["mixed"]
    keys = key_columns(rows, origin=True).assign(
        date=pd.to_datetime(key_columns(rows)["date"]).dt.date,
        moment=rows["as_of"].dt.tz_convert("America/New_York").to_numpy(),
    )
    keys.to_parquet(tmp_path / "keys.parquet", index=False)
    out = tmp_path / "scored.parquet"
    args = ["--input", tmp_path / "keys.parquet", "--output", out, "--enrich"]
    assert run(*args, "--as-of-column", "moment") == 0
    scored, expected = pd.read_parquet(out), scored_rows(tmp_path, rows)
    assert scored.columns.tolist() == [
        "flight",
        "date",
        "flight_id",
        "moment",
        "sched_dep",
        *RESULTS,
    ]
    np.testing.assert_array_equal(scored[PREDICTION], expected[PREDICTION])
    assert scored["flight"].dtype == "int64" and rows["lead_hours"].nunique() == 5


def ambiguous(store) -> tuple[str, int, str, list[str]]:
    """A carrier's flight number that leaves two New York airports on one day."""
    table = store["timetable"]
    day = table["sched_dep"].dt.tz_convert("America/New_York").dt.strftime("%Y-%m-%d")
    counts = table.groupby(["carrier", "flight", day])["origin"].nunique()
    carrier, flight, date = counts[counts == 2].index[0]
    same = (table["carrier"] == carrier) & (table["flight"] == flight) & (day == date)
    return carrier, int(flight), date, sorted(set(table.loc[same, "origin"]))


def test_keys_naming_no_departure_or_two_are_rejected_and_the_rest_scored(tmp_path, sample, store):
    rows = sample["2h"].head(5)
    keys = key_columns(rows).assign(at=rows["as_of"].map(lambda t: t.isoformat()))
    carrier, flight, date, origins = ambiguous(store)
    keys.loc[1, ["carrier", "flight"]] = ["ZZ", 9999]
    keys.loc[2, ["carrier", "flight", "date"]] = [carrier, flight, date]
    keys.loc[3, "at"] = (rows["as_of"][3] + pd.Timedelta(hours=2)).isoformat()  # departure time
    keys.to_csv(tmp_path / "keys.csv", index=False)
    out = tmp_path / "scored.parquet"
    args = ["--input", tmp_path / "keys.csv", "--output", out, "--enrich"]
    assert run(*args, "--as-of-column", "at") == 1
    rejects = [json.loads(line) for line in (tmp_path / "scored.rejects.jsonl").open()]
    assert [(r["source_file"], r["source_row"], r["reject_field"]) for r in rejects] == [
        (str(tmp_path / "keys.csv"), 1, "flight"),
        (str(tmp_path / "keys.csv"), 2, "origin"),
        (str(tmp_path / "keys.csv"), 3, "at"),
    ]
    reasons = [r["reject_reason"] for r in rejects]
    assert reasons[0] == f"no flight ZZ 9999 on {keys['date'][1]} in the timetable"
    both = re.fullmatch(
        rf"{carrier} {flight} on {date} leaves from (\w+) at \d\d:\d\d and from (\w+) at"
        r" \d\d:\d\d \(New York time\): give the row its origin",
        reasons[1],
    )
    assert both and sorted(both.groups()) == origins, reasons[1]
    assert "is not before the scheduled departure" in reasons[2]
    assert rejects[2]["values"] == {
        **keys.loc[3].astype(str).to_dict(),
        "flight": str(keys["flight"][3]),
    }
    scored = pd.read_parquet(out)
    assert scored["flight_id"].tolist() == ["f0", "f4"]
    expected = scored_rows(tmp_path, rows)
    np.testing.assert_array_equal(scored[PREDICTION], expected[PREDICTION].iloc[[0, 4]])


def test_a_record_the_job_refuses_is_rejected_under_its_keys_row(
    tmp_path, sample, smoke_pipeline, monkeypatch
):
    """The job's own checks still hold: a store whose EWR temperatures are out of bounds
    gives records the job rejects, and their lines name the keys file and row, in order
    with the enrichment's own rejects."""
    features = tmp_path / "data" / "features"
    shutil.copytree(smoke_pipeline.features, features)
    weather = pd.read_parquet(features / "weather.parquet")
    weather.loc[weather["origin"] == "EWR", "temp"] = 500.0
    weather.to_parquet(features / "weather.parquet", index=False)
    monkeypatch.setenv("FD_DATA_DIR", str(tmp_path / "data"))
    rows = sample["2h"]
    picked = [rows.index[rows["origin"] == o][0] for o in ("EWR", "JFK", "EWR")]
    unknown = {"carrier": "ZZ", "flight": 1, "date": "2013-03-05", "flight_id": "zz"}
    keys = pd.concat([pd.DataFrame([unknown]), key_columns(rows.loc[picked])])  # f0 f1 f2
    keys.to_csv(tmp_path / "keys.csv", index=False)
    out = tmp_path / "scored.parquet"
    assert run("--input", tmp_path / "keys.csv", "--output", out, "--enrich", "--lead", 2) == 1
    rejects = [json.loads(line) for line in (tmp_path / "scored.rejects.jsonl").open()]
    got = [(r["source_file"], r["source_row"], r["reject_field"]) for r in rejects]
    keys_file = str(tmp_path / "keys.csv")
    assert got == [(keys_file, 0, "flight"), (keys_file, 1, "temp"), (keys_file, 3, "temp")]
    assert rejects[1]["values"]["temp"] == 500.0 and rejects[1]["values"]["origin"] == "EWR"
    assert pd.read_parquet(out)["flight_id"].tolist() == ["f1"]


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--enrich"], "--enrich needs --lead HOURS or --as-of-column NAME"),
        (
            ["--enrich", "--lead", "2", "--as-of-column", "at"],
            "argument --as-of-column: not allowed with argument --lead",
        ),
        (["--lead", "2"], "--lead and --as-of-column go with --enrich"),
        (["--as-of-column", "at"], "--lead and --as-of-column go with --enrich"),
        (["--enrich", "--lead", "0"], "argument --lead: 0: hours, more than 0 and at most 8760"),
    ],
)
def test_the_moment_is_one_of_lead_or_column_and_only_with_enrich(tmp_path, capsys, flags, error):
    (tmp_path / "keys.csv").write_text("carrier,flight,date\nUA,1545,2013-03-05\n")
    argv = ["--input", tmp_path / "keys.csv", "--output", tmp_path / "out.parquet", *flags]
    with pytest.raises(SystemExit) as exited:
        predict.main([str(a) for a in argv])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"python -m src.predict: error: {error}"
    assert list(tmp_path.iterdir()) == [tmp_path / "keys.csv"]


def test_a_keys_file_without_a_key_column_writes_nothing(tmp_path, caplog):
    (tmp_path / "keys.csv").write_text("carrier,flight\nUA,1545\n")
    out = tmp_path / "out" / "scored.parquet"
    args = ["--input", tmp_path / "keys.csv", "--output", out, "--enrich", "--lead", 2]
    assert run(*args) == 2
    assert not out.parent.exists()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        f"SchemaError: {tmp_path / 'keys.csv'}: required column(s) ['date'] missing (--enrich"
        " reads carrier, flight, date as YYYY-MM-DD, and optionally origin)"
    ]
