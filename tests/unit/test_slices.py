"""The sliced evaluation (src/model/slices.py) on real flights: 1-4 January 2013 at the served
lead (each flight once), as preprocess makes them, scored by a noisy function of the label. Every figure is checked
against scikit-learn on the slice's own rows, picked here independently of the code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from src.common.schema import TARGET, WEATHER
from src.model.gate import bootstrap_aucs, bootstrap_indices
from src.model.slices import (
    OTHER,
    OVERALL,
    hour_band,
    slice_table,
    weak_findings,
)
from src.registry.card import render_model_card
from src.tracking.runs import slice_metrics

MIN_ROWS = 100  # on the 2,978 flights: six carriers (97 flights) are grouped
N_BOOT = 50
SEED = 7
DIMENSIONS = ("carrier", "origin", "hour_band", "plane", "weather")


def noisy_scores(frame: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Probabilities that rank delayed flights higher, with noise, and ties (2 decimals)."""
    rng = np.random.default_rng(seed)
    logit = -1.5 + 1.2 * frame[TARGET].to_numpy() + rng.normal(0, 1, len(frame))
    return np.round(1 / (1 + np.exp(-logit)), 2)


WEATHER_NAMES = [c.name for c in WEATHER]


@pytest.fixture(scope="module")
def flights(served_slice) -> pd.DataFrame:
    """Every flight has a reading of its origin's last three hours as of 2 h before. As an
    outage of the station would leave them, the 39 EWR flights due 05:00-06:59 on 2 January
    get none: the weather dimension's usual lone small slice, "missing" (7 delayed)."""
    frame = served_slice.reset_index(drop=True).copy()
    outage = frame["origin"].eq("EWR") & frame["day"].eq(2) & frame["hour"].between(5, 6)
    assert frame[WEATHER_NAMES].notna().any(axis=1).all() and outage.sum() == 39
    frame.loc[outage, WEATHER_NAMES] = np.nan
    return frame


@pytest.fixture(scope="module")
def known(feature_state) -> np.ndarray:
    return feature_state.plane_tailnum


@pytest.fixture(scope="module")
def table(flights, known) -> pd.DataFrame:
    return slice_table(flights, noisy_scores(flights), known, MIN_ROWS, N_BOOT, SEED)


def rows_of(frame: pd.DataFrame, row, known) -> np.ndarray:
    """The mask of a table row's flights, spelled out from the rule, not from the code."""
    values = row.members.split(", ") if row.slice == OTHER else [row.slice]
    if row.dimension == OVERALL:
        return np.ones(len(frame), dtype=bool)
    if row.dimension == "hour_band":
        first, last = (int(h) for h in row.slice.split("-"))
        return frame["hour"].between(first, last).to_numpy()
    if row.dimension == "plane":
        return (frame["tailnum"].isin(known) == (row.slice == "matched")).to_numpy()
    if row.dimension == "weather":
        present = frame[WEATHER_NAMES].notna().any(axis=1)
        return (present == (row.slice == "present")).to_numpy()
    return frame[row.dimension].isin(values).to_numpy()


def test_every_figure_is_sklearns_on_the_slice_rows(table, flights, known):
    y, p = flights[TARGET].to_numpy(), noisy_scores(flights)
    assert list(table["dimension"].unique()) == [OVERALL, *DIMENSIONS]
    for row in table.itertuples():
        mask = rows_of(flights, row, known)
        assert row.rows == mask.sum() > 0, row
        assert row.base_rate == pytest.approx(y[mask].mean())
        assert row.mean_prediction == pytest.approx(p[mask].mean())
        assert row.log_loss == pytest.approx(log_loss(y[mask], p[mask], labels=[0, 1]))
        assert row.roc_auc == pytest.approx(roc_auc_score(y[mask], p[mask]))
        assert row.roc_auc_low <= row.roc_auc <= row.roc_auc_high, row


def test_small_slices_are_grouped_never_dropped(table, flights):
    counts = flights["carrier"].value_counts()
    small = sorted(counts[counts < MIN_ROWS].index)
    carriers = table[table["dimension"] == "carrier"].set_index("slice")
    assert carriers.loc[OTHER, "members"].split(", ") == small
    assert carriers.loc[OTHER, "rows"] == counts[small].sum() < MIN_ROWS  # small, and kept
    assert (carriers.drop(OTHER)["rows"] >= MIN_ROWS).all()
    assert carriers.index[-1] == OTHER
    # Weather is missing on 39 flights: a lone small slice keeps its name.
    weather = table[table["dimension"] == "weather"].set_index("slice")
    assert weather.loc["missing", "rows"] < MIN_ROWS and weather["members"].eq("").all()
    for dimension, rows in table.groupby("dimension")["rows"].sum().items():
        assert rows == len(flights), dimension


def test_hour_bands_cover_every_scheduled_hour():
    assert list(hour_band(range(24))) == (
        ["00-09"] * 10 + ["10-13"] * 4 + ["14-17"] * 4 + ["18-23"] * 6
    )


def test_a_one_class_slice_has_no_auc_and_no_error(flights, known):
    frame = flights.copy()
    frame.loc[frame["origin"] == "LGA", TARGET] = 0
    out = slice_table(frame, noisy_scores(flights), known, MIN_ROWS, N_BOOT, SEED)
    lga = out[out["slice"] == "LGA"].iloc[0]
    assert lga[["roc_auc", "roc_auc_low", "roc_auc_high"]].isna().all()
    assert lga["base_rate"] == 0 and np.isfinite(lga["log_loss"])
    assert out.drop(lga.name)["roc_auc"].notna().all()
    assert [s["slice"] for s in weak_findings(out)["no_auc"]] == ["LGA"]
    card = render_model_card(META, {}, artifact(out))
    assert f"| origin | LGA | {int(lga['rows']):,} | 0.0000 |" in card
    assert f"| – | {lga['log_loss']:.4f} |" in card
    assert "No ROC AUC (one class only) for: origin LGA." in card


def test_intervals_are_reproducible_for_a_seed(table, flights, known):
    p = noisy_scores(flights)
    again = slice_table(flights, p, known, MIN_ROWS, N_BOOT, SEED)
    pd.testing.assert_frame_equal(again, table)
    other_seed = slice_table(flights, p, known, MIN_ROWS, N_BOOT, SEED + 1)
    assert not np.allclose(other_seed["roc_auc_low"], table["roc_auc_low"])
    pd.testing.assert_series_equal(other_seed["roc_auc"], table["roc_auc"])  # same points


def test_the_table_follows_the_scores(table, flights, known):
    """Noise in place of one carrier's scores: its figures move, another carrier's do not."""
    p = noisy_scores(flights)
    ev = (flights["carrier"] == "EV").to_numpy()
    p[ev] = np.random.default_rng(1).random(ev.sum())
    out = slice_table(flights, p, known, MIN_ROWS, N_BOOT, SEED).set_index(["dimension", "slice"])
    before = table.set_index(["dimension", "slice"])
    assert out.loc[("carrier", "EV"), "roc_auc"] < before.loc[("carrier", "EV"), "roc_auc"] - 0.1
    assert (
        out.loc[("carrier", "EV"), "mean_prediction"]
        != before.loc[("carrier", "EV"), "mean_prediction"]
    )
    pd.testing.assert_series_equal(out.loc[("carrier", "UA")], before.loc[("carrier", "UA")])


def test_weak_findings_name_the_slice_made_weak(flights, known):
    """EV's scores replaced by noise (AUC near 0.5), JFK's pushed up by 0.3."""
    p = noisy_scores(flights)
    ev, jfk = (flights["carrier"] == "EV").to_numpy(), (flights["origin"] == "JFK").to_numpy()
    p[ev] = np.random.default_rng(1).random(ev.sum())
    p[jfk] = np.clip(p[jfk] + 0.3, 0, 1)
    found = weak_findings(slice_table(flights, p, known, MIN_ROWS, N_BOOT, SEED))
    assert ("carrier", "EV") in [(s["dimension"], s["slice"]) for s in found["below_overall"]]
    for s in found["below_overall"]:
        assert s["roc_auc_high"] < found["overall"]["roc_auc"]
    worst = {s["dimension"]: s["slice"] for s in found["worst_by_dimension"]}
    assert worst["carrier"] == "EV" and set(worst) == set(DIMENSIONS)
    gap = found["largest_gap"]
    assert (gap["dimension"], gap["slice"]) == ("origin", "JFK") and gap["gap"] > 0.2
    assert gap["gap"] == pytest.approx(p[jfk].mean() - flights[TARGET][jfk].mean())


def test_a_dimension_wholly_below_is_named(flights, known):
    """Scores that only tell the hour bands apart (each band's delay rate, plus noise blind to
    the label): the ranking lives between bands, so every band's AUC is near 0.5."""
    band = hour_band(flights["hour"])
    rate = flights.groupby(band)[TARGET].transform("mean").to_numpy()
    p = rate + np.random.default_rng(2).normal(0, 0.01, len(flights))
    table = slice_table(flights, p, known, MIN_ROWS, N_BOOT, SEED)
    found = weak_findings(table)
    assert found["all_below"] == ["hour_band"]
    assert found["overall"]["roc_auc"] > 0.6
    card = render_model_card(META, {}, artifact(table))
    assert "Every slice of hour band lies below it." in card


def test_scores_must_match_the_rows(flights, known):
    with pytest.raises(ValueError, match="2977 scores for 2978 rows"):
        slice_table(flights, noisy_scores(flights)[1:], known, MIN_ROWS, N_BOOT, SEED)


def test_bootstrap_aucs_are_sklearns_on_the_resampled_rows(flights):
    y, p = flights[TARGET].to_numpy(), noisy_scores(flights)
    aucs = bootstrap_aucs(y, p, 5, SEED)
    drawn = next(bootstrap_indices(y, 5, SEED))
    assert aucs == pytest.approx([roc_auc_score(y[i], p[i]) for i in drawn])


def test_slice_metric_names_are_mlflow_keys(table):
    weird = table.iloc[:2].assign(slice=["all", "A/B (x)"])
    metrics = slice_metrics(weird)
    assert "test_slice_overall_all_roc_auc" in metrics
    assert "test_slice_carrier_A_B__x__rows" in metrics
    assert metrics["test_slice_overall_all_log_loss"] == table.iloc[0]["log_loss"]
    one_class = weird.assign(roc_auc=np.nan)
    assert not any(k.endswith("_roc_auc") for k in slice_metrics(one_class))


# ---------------------------------------------------------------- the model card
META = {
    "name": "flight-delay",
    "version": 3,
    "alias": "champion",
    "run_id": "r1",
    "model_kind": "lightgbm",
    "config_name": "smoke",
    "config_hash": "abc",
    "data_manifest_sha256": "d",
    "raw_snapshot_sha256": "s",
    "git_commit": "g",
    "threshold": 0.5,
    "metrics": {"test_roc_auc": 0.71, "test_ece": 0.0123},
}


def artifact(table: pd.DataFrame) -> dict:
    """The slice artifact as the card reads it back from JSON (NaN as None)."""
    records = table.astype(object).where(table.notna(), None).to_dict("records")
    return {"min_rows": MIN_ROWS, "bootstrap": N_BOOT, "interval": 0.95, "slices": records}


def test_card_shows_the_slices_and_where_the_model_is_weak(flights, known):
    p = noisy_scores(flights)
    ev = (flights["carrier"] == "EV").to_numpy()
    p[ev] = np.random.default_rng(1).random(ev.sum())
    jfk = (flights["origin"] == "JFK").to_numpy()
    p[jfk] = np.clip(p[jfk] + 0.3, 0, 1)
    table = slice_table(flights, p, known, MIN_ROWS, N_BOOT, SEED)
    card = render_model_card(META, {"calibrator": "isotonic", "seed": "42"}, artifact(table))
    ev_row = table[table["slice"] == "EV"].iloc[0]
    auc = f"{ev_row.roc_auc:.4f} ({ev_row.roc_auc_low:.4f}–{ev_row.roc_auc_high:.4f})"
    assert f"| carrier | EV | {int(ev_row.rows):,} | {ev_row.base_rate:.4f} |" in card
    weak = card.split("## Where the model is weak")[1].split("## Features")[0]
    assert f"- carrier EV: ROC AUC {auc} on {int(ev_row.rows):,} flights." in weak
    assert "| carrier | other (AS, F9, FL, HA, VX, YV) | 97 |" in card
    jfk_row = table[table["slice"] == "JFK"].iloc[0]
    gap = jfk_row.mean_prediction - jfk_row.base_rate
    assert (
        f"The largest gap between mean prediction and delay rate is origin JFK\n"
        f"({int(jfk_row.rows):,} flights): a mean prediction of {jfk_row.mean_prediction:.4f}"
        f" against an\nobserved delay rate of {jfk_row.base_rate:.4f}, over-predicting by"
        f" {gap:.4f}." in weak
    )
    assert "Every slice of" not in weak  # no dimension lies wholly below here
    assert "| Calibration | isotonic |" in card and "seed=42" in card
    assert "calibrator=" not in card
    assert "| ECE | – | 0.0123 |" in card


def test_card_without_a_slice_table_says_so():
    card = render_model_card(META, {"seed": "42"})
    assert "This run logged no slice table" in card
    assert "Where the model is weak" not in card
    assert "| Calibration | none |" in card  # and no evidence logged: the name alone


def test_card_gives_the_calibrators_evidence():
    meta = {
        **META,
        "metrics": {
            **META["metrics"],
            "calibration_later_log_loss_raw": 0.5078,
            "calibration_later_log_loss_platt": 0.5099,
            "calibration_later_log_loss_isotonic": 0.5112,
        },
    }
    card = render_model_card(meta, {"calibrator": "none"})
    assert (
        "| Calibration | none (chosen by log loss on the later half of the validation window:"
        " raw 0.5078, isotonic 0.5112, platt 0.5099) |" in card
    )
