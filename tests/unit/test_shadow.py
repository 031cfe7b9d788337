"""The challenger in the shadow (src/serving/prediction_log.py): scored at flush, off the
request path, in one call per challenger; its probabilities are the challenger's own; a
challenger that fails costs no champion line. Real models fitted on the unit slice."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pytest

from src.common.schema import API_REQUEST_FIELDS
from src.model.features import request_records
from src.model.fit import fit_model
from src.model.model import FlightDelayModel
from src.registry import versions
from src.serving import loader
from src.serving.loader import LoadedModel
from src.serving.prediction_log import PredictionLogger, read_log

TRAIN_ROWS = 2000
CALLS: list[int] = []  # flights per predict_proba call of a CountingModel


@dataclass(frozen=True)
class CountingModel(FlightDelayModel):
    """The real model, noting how many flights each predict_proba call scores."""

    def predict_proba(self, cols):
        CALLS.append(len(cols["year"]))
        return super().predict_proba(cols)


@pytest.fixture(scope="module")
def fitted(processed_slice, raw_slice, smoke_cfg) -> dict[str, FlightDelayModel]:
    train = processed_slice.head(TRAIN_ROWS)
    return {
        kind: fit_model(kind, train, raw_slice["planes"], smoke_cfg)
        for kind in ("lightgbm", "logistic")
    }


@pytest.fixture(scope="module")
def flights(processed_slice) -> list[dict]:
    """Held-out flights as API requests: REQUEST fields plus a flight number."""
    held_out = processed_slice.iloc[TRAIN_ROWS : TRAIN_ROWS + 60]
    return [
        {**r, "flight": int(n)}
        for r, n in zip(request_records(held_out), held_out["flight"], strict=True)
    ]


def served(model: FlightDelayModel, version: str) -> LoadedModel:
    return LoadedModel(model, "flight-delay", version, "challenger", "registry", None, {})


def columns(recs: list[dict]) -> dict[str, list]:
    return {f: [r[f] for r in recs] for f in API_REQUEST_FIELDS}


def log_one_by_one_and_as_batch(logger, champion, flights, shadow) -> None:
    """20 one-flight requests, then the next 40 flights as one batch request."""
    for i, flight in enumerate(flights[:20]):
        cols = {f: [v] for f, v in flight.items()}
        proba = [champion.predict_one(flight)]
        logger.log(f"one-{i}", "flight-delay", "1", cols, proba, shadow)
    batch = columns(flights[20:])
    logger.log("batch", "flight-delay", "1", batch, champion.predict_proba(batch), shadow)


def test_the_shadow_alias_is_the_registrys_challenger():
    """Serving may not import src.registry, so it names @challenger itself."""
    assert loader.CHALLENGER == versions.CHALLENGER and loader.CHAMPION == versions.CHAMPION


def test_shadow_scores_are_the_challengers_own_in_one_call(fitted, flights, tmp_path):
    champion = fitted["lightgbm"]
    m = fitted["logistic"]
    challenger = CountingModel(m.state, m.estimator, m.kind)
    observed = []
    logger = PredictionLogger(tmp_path, 3600, on_scores=lambda *a: observed.append(a))
    log_one_by_one_and_as_batch(logger, champion, flights, served(challenger, "2"))
    CALLS.clear()
    assert logger.flush() == 21
    logger.close()
    assert CALLS == [60]  # 21 requests, one call

    rows, torn = read_log(tmp_path)
    own = m.predict_proba(columns(flights))
    assert torn == 0 and len(rows) == 60 and (rows["shadow_version"] == "2").all()
    np.testing.assert_array_equal(rows["shadow_probability"].to_numpy(dtype=float), own)
    assert np.abs(own - rows["delay_probability"]).max() > 0.01  # another model's scores
    assert list(rows["flight"]) == [f["flight"] for f in flights]
    # Every score reached the metrics once: one call per role and version.
    assert [(role, version, len(p)) for role, version, p in observed] == [
        ("champion", "1", 60),
        ("challenger", "2", 60),
    ]
    np.testing.assert_array_equal(observed[1][2], own)


def test_each_request_keeps_the_challenger_it_was_logged_with(fitted, flights, tmp_path):
    """A swap between two requests of one flush: each line names the challenger of its own
    request (read at log time), and a request logged without one has no shadow scores."""
    champion = fitted["lightgbm"]
    logger = PredictionLogger(tmp_path, 3600)
    shadows = [served(fitted["logistic"], "2"), None, served(fitted["lightgbm"], "3")]
    for i, shadow in enumerate(shadows):
        cols = columns(flights[i * 10 : (i + 1) * 10])
        logger.log(f"r{i}", "flight-delay", "1", cols, champion.predict_proba(cols), shadow)
    logger.close()

    rows, _ = read_log(tmp_path)
    by_request = rows.groupby("request_id", sort=True)
    assert list(by_request["shadow_version"].first()) == ["2", None, "3"]
    r2 = rows[rows["request_id"] == "r2"]
    np.testing.assert_array_equal(r2["shadow_probability"], r2["delay_probability"])


def test_a_failing_challenger_costs_no_champion_line(fitted, flights, tmp_path, caplog):
    champion = fitted["lightgbm"]
    logger = PredictionLogger(tmp_path, 3600)
    good = columns(flights[:5])
    bad = {**good, "distance": ["far"] * 5}  # no model can read this (the API would 422)
    shadow = served(fitted["logistic"], "2")
    logger.log("good", "flight-delay", "1", good, champion.predict_proba(good), shadow)
    logger.log("bad", "flight-delay", "1", bad, [0.5] * 5, shadow)
    with caplog.at_level(logging.ERROR):
        assert logger.flush() == 2
    logger.close()

    assert "challenger v2 failed on 2 requests" in caplog.text
    rows, torn = read_log(tmp_path)
    assert torn == 0 and len(rows) == 10
    assert rows["shadow_version"].isna().all() and rows["shadow_probability"].isna().all()
