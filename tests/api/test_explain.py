"""`?explain=true` on POST /predict and GET /flights/...: the answer gains an `explanation`
(base, raw score, the largest groups of contributions) computed by the served smoke champion;
without the flag the answer is as before and no contribution is computed.

The reasons are checked against the model's own contributions computed apart from the API:
the export read with the plain lightgbm.Booster (the API serves it through the C API),
summed by hand over src.model.features.EXPLANATION_GROUPS. The flights route is asked about
UA 236 from EWR on the store fed to 15 August 2013, 12:00 UTC (tests/api/test_flights.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from src.common.schema import EXAMPLE_FLIGHT, REQUEST_FIELDS
from src.data.validate import read_snapshot
from src.featurestore.offline import build_views
from src.featurestore.online import feed
from src.featurestore.online_sqlite import SQLiteStore
from src.featurestore.views import VIEWS
from src.model.features import EXPLANATION_GROUPS, group_key, request_columns
from src.model.model import FlightDelayModel, NotExplainable, load
from tests.api.support import CFG
from tests.api.test_flights import CLOCK, EWR_236, START, client_on, expected_record, plain

TOLERANCE = 1e-9
ANSWER_KEYS = {
    "request_id",
    "delay_probability",
    "delayed",
    "threshold",
    "model_name",
    "model_version",
}


@pytest.fixture(scope="module")
def raw(smoke_pipeline) -> dict:
    return read_snapshot(smoke_pipeline, CFG.snapshot)


@pytest.fixture(scope="module")
def fed_tables(raw) -> dict:
    """The views' events the store is fed: START..CLOCK (as tests/api/test_flights.py)."""
    tables = build_views(raw)
    return {name: t[t[VIEWS[name].event_time].between(START, CLOCK)] for name, t in tables.items()}


@pytest.fixture(scope="module")
def client(smoke_pipeline, tmp_path_factory, fed_tables):
    """The default app on a data folder whose online store (SQLite) is fed up to CLOCK."""
    data = tmp_path_factory.mktemp("data")
    with SQLiteStore(data / "online" / "features.sqlite") as store:
        feed(store, fed_tables, until=CLOCK)
    yield from client_on({"FD_DATA_DIR": str(data)})


@pytest.fixture(scope="module")
def own_model(smoke_pipeline) -> FlightDelayModel:
    """The smoke champion as its export holds it, on the plain lightgbm.Booster."""
    return load(smoke_pipeline.champion_model)


def groups_by_hand(model: FlightDelayModel, record: dict) -> tuple[dict[str, float], float]:
    """Each group's contribution for one flight, and the raw score, from the booster's
    pred_contrib summed over the declared groups' features."""
    cols = {name: [record.get(name)] for name in REQUEST_FIELDS}
    row = model.contributions(cols)[0]
    by_feature = dict(zip(model.features, row[:-1], strict=True))
    groups = {
        group: sum(by_feature[name] for name in members if name in by_feature)
        for group, members in EXPLANATION_GROUPS
    }
    return groups, float(row.sum())


def check_explanation(body: dict, model: FlightDelayModel, record: dict) -> None:
    why = body["explanation"]
    groups, raw_score = groups_by_hand(model, record)
    assert abs(why["raw_score"] - raw_score) < TOLERANCE
    assert abs(why["base"] + sum(groups.values()) - why["raw_score"]) < TOLERANCE
    largest = max(groups, key=lambda g: abs(groups[g]))
    first = why["reasons"][0]
    assert first["group"] == largest
    assert abs(first["value"] - groups[largest]) < TOLERANCE
    assert first["text"] == f"{largest}: {groups[largest]:+.2f}"
    assert len(why["reasons"]) == 3
    largest_three = sorted((abs(v) for v in groups.values()), reverse=True)[:3]
    assert [abs(r["value"]) for r in why["reasons"]] == pytest.approx(largest_three, abs=TOLERANCE)
    # The contributions explain the logit before calibration: the probability served is the
    # calibrator applied to sigmoid(raw score).
    p = 1 / (1 + np.exp(-why["raw_score"]))
    if model.calibrator is not None:
        p = float(model.calibrator.apply(np.array([p]))[0])
    assert abs(p - body["delay_probability"]) < TOLERANCE


def test_post_predict_explains_when_asked(client, own_model):
    plain_answer = client.post("/predict", json=EXAMPLE_FLIGHT)
    assert plain_answer.status_code == 200
    assert set(plain_answer.json()) == ANSWER_KEYS  # unchanged without the flag
    r = client.post("/predict?explain=true", json=EXAMPLE_FLIGHT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == ANSWER_KEYS | {"explanation"}
    assert body["delay_probability"] == pytest.approx(
        plain_answer.json()["delay_probability"], abs=1e-12
    )
    check_explanation(body, own_model, EXAMPLE_FLIGHT)
    assert set(client.post("/predict?explain=false", json=EXAMPLE_FLIGHT).json()) == ANSWER_KEYS


def test_a_flight_by_number_explains_when_asked(client, own_model, raw, fed_tables):
    before = client.get(EWR_236)
    assert before.status_code == 200 and "explanation" not in before.json()
    r = client.get(EWR_236 + "&explain=true")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == set(before.json()) | {"explanation"}
    assert body["delay_probability"] == pytest.approx(before.json()["delay_probability"], abs=1e-12)
    check_explanation(body, own_model, plain(expected_record(raw, fed_tables, "EWR")))


@pytest.mark.parametrize("flag", ["maybe", "2", ""])
def test_a_bad_flag_is_422_naming_it(client, flag):
    for r in (
        client.post(f"/predict?explain={flag}", json=EXAMPLE_FLIGHT),
        client.get(f"{EWR_236}&explain={flag}"),
    ):
        assert r.status_code == 422, r.text
        assert [e["loc"] for e in r.json()["detail"]] == [["query", "explain"]]


def test_no_contribution_is_computed_without_the_flag(client, monkeypatch):
    def refuse(self, cols):
        raise NotExplainable("contributions asked for")

    monkeypatch.setattr(FlightDelayModel, "contributions", refuse)
    assert client.post("/predict", json=EXAMPLE_FLIGHT).status_code == 200
    assert client.get(EWR_236).status_code == 200
    # With the flag they are asked for; a model without them is a 501 that says so.
    r = client.post("/predict?explain=true", json=EXAMPLE_FLIGHT)
    assert r.status_code == 501 and "contributions asked for" in r.json()["detail"]
    assert client.get(EWR_236 + "&explain=true").status_code == 501


def test_the_docs_show_the_flag_and_the_explanation(client):
    schema = client.get("/openapi.json").json()
    for path, method in (("/predict", "post"), ("/flights/{carrier}/{number}/{day}", "get")):
        params = {p["name"] for p in schema["paths"][path][method].get("parameters", [])}
        assert "explain" in params, path
    parts = schema["components"]["schemas"]
    assert "explanation" in parts["PredictionResponse"]["properties"]
    assert "explanation" in parts["FlightPrediction"]["properties"]
    assert set(parts["Explanation"]["properties"]) == {"base", "raw_score", "reasons"}
    assert set(parts["Reason"]["properties"]) == {"group", "value", "text"}


def test_the_smoke_card_shows_what_moves_the_score(
    smoke_pipeline, mlflow_client, own_model, test_split
):
    """The smoke run logged each group's mean absolute contribution over its test flights
    at the served lead (a seeded sample when more), and the card tables them."""
    from src.tracking.runs import CONTRIBUTION_METRIC, EXPLAINED_FLIGHTS, EXPLAINED_METRIC

    meta = json.loads(smoke_pipeline.champion_metadata.read_text())
    metrics = mlflow_client.get_run(meta["run_id"]).data.metrics
    test = test_split[test_split["lead_hours"] == CFG.split.served_lead_hours]
    if len(test) > EXPLAINED_FLIGHTS:
        test = test.sample(EXPLAINED_FLIGHTS, random_state=CFG.seed)
    assert metrics[EXPLAINED_METRIC] == len(test)
    importance = own_model.group_importance(request_columns(test))
    for group, value in importance.items():
        assert abs(metrics[CONTRIBUTION_METRIC + group_key(group)] - value) < TOLERANCE, group
    card = smoke_pipeline.model_card(CFG.registry.model_name).read_text()
    assert f"over {len(test):,} test flights" in card
    largest = max(importance, key=importance.__getitem__)
    head = "| Group | Mean absolute contribution (logit) | |\n|---|---|---|\n"
    assert f"{head}| {largest} | {importance[largest]:.4f} | {'█' * 20} |" in card
