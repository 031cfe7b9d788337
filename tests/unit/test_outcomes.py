"""Joining logged predictions with observed departures (src/monitoring/outcomes.py), the
cycle's pushed figures (src/monitoring/push.py) and which months it may use (src/cycle.py).
Flights are real rows of the public flights table."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from prometheus_client import generate_latest
from sklearn.metrics import roc_auc_score

from src.common.errors import PipelineError, SchemaError
from src.common.schema import OUTCOME_KEY, PREDICTION
from src.cycle import labelled_months
from src.monitoring.outcomes import join_outcomes, live_figures, read_outcomes
from src.monitoring.push import cycle_registry

# Five January 1st departures from EWR (year, month, day, carrier, flight, origin, dep_delay).
FLIGHTS = [
    (2013, 1, 1, "UA", 1545, "EWR", 2.0),
    (2013, 1, 1, "UA", 1696, "EWR", -4.0),
    (2013, 1, 1, "B6", 507, "EWR", 101.0),
    (2013, 1, 1, "EV", 4424, "EWR", 23.0),
    (2013, 1, 1, "US", 1733, "EWR", None),  # cancelled
]


def outcomes() -> pd.DataFrame:
    return pd.DataFrame(FLIGHTS, columns=[*OUTCOME_KEY, "dep_delay"])


def logged(rows: list[tuple], version: str = "3", shadow: str | None = None) -> pd.DataFrame:
    """Prediction log rows: the key columns, the probability, optionally a shadow score."""
    frame = pd.DataFrame(
        [r[:6] + (p,) for r, p in rows], columns=[*OUTCOME_KEY, PREDICTION]
    ).astype({"flight": object})
    frame["model_version"] = version
    frame["shadow_version"] = shadow
    frame["shadow_probability"] = None if shadow is None else 1 - frame[PREDICTION]
    return frame


def test_every_prediction_lands_in_exactly_one_bucket():
    rows = [(f, p) for f, p in zip(FLIGHTS, (0.1, 0.2, 0.8, 0.6, 0.5), strict=True)]
    rows.append(((2013, 1, 1, "AA", 1141, "JFK", None), 0.3))  # no outcome yet
    rows.append(((2013, 1, 1, "UA", None, "EWR", None), 0.4))  # caller sent no flight number
    joined, counts = join_outcomes(logged(rows), outcomes())
    assert counts == {"predictions": 7, "joined": 4, "cancelled": 1, "unmatched": 2}
    assert joined["flight"].tolist() == [1545, 1696, 507, 4424]
    assert joined["delayed"].tolist() == [0, 0, 1, 1]  # 15+ minutes late


def test_live_figures_per_role_and_version():
    rows = [(f, p) for f, p in zip(FLIGHTS[:4], (0.1, 0.2, 0.8, 0.6), strict=True)]
    joined, _ = join_outcomes(logged(rows, shadow="4"), outcomes())
    champion, challenger = live_figures(joined)
    assert (champion["role"], champion["version"], champion["rows"]) == ("champion", "3", 4)
    assert champion["roc_auc"] == 1.0
    assert champion["calibration_gap"] == pytest.approx(np.mean([0.1, 0.2, 0.8, 0.6]) - 0.5)
    # one flight per bin: the ECE is the mean of |score - label|
    assert champion["ece"] == pytest.approx(np.mean([0.1, 0.2, 0.2, 0.4]))
    assert (challenger["role"], challenger["version"]) == ("challenger", "4")
    assert challenger["roc_auc"] == roc_auc_score([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.4])


def test_one_class_joined_has_no_auc_but_still_calibration():
    joined, _ = join_outcomes(logged([(FLIGHTS[0], 0.25), (FLIGHTS[1], 0.15)]), outcomes())
    (figures,) = live_figures(joined)
    assert figures["roc_auc"] is None and figures["calibration_gap"] == pytest.approx(0.2)
    assert figures["ece"] == pytest.approx(0.2)  # both in (0.1, 0.2]: the same gap


def test_outcome_files_name_the_file_and_the_problem(tmp_path):
    assert read_outcomes(tmp_path).empty  # none arrived yet: every prediction is unmatched
    outcomes().drop(columns="dep_delay").to_csv(tmp_path / "outcomes-2013-01.csv", index=False)
    with pytest.raises(
        SchemaError, match=r"outcomes-2013-01.csv: missing column\(s\) \['dep_delay'\]"
    ):
        read_outcomes(tmp_path)
    outcomes().to_csv(tmp_path / "outcomes-2013-01.csv", index=False)
    outcomes().head(1).to_csv(tmp_path / "outcomes-2013-01-again.csv", index=False)
    with pytest.raises(SchemaError, match="1 outcome\\(s\\) repeat a key"):
        read_outcomes(tmp_path)


@pytest.mark.parametrize(
    ("as_of", "months"),
    [("2013-02-28", [1, 2]), ("2013-02-27", [1]), ("2013-12-31", list(range(1, 13)))],
)
def test_a_month_is_labelled_once_it_has_ended(as_of, months):
    assert labelled_months(date.fromisoformat(as_of), list(range(1, 13))) == months


def test_no_month_ended_is_an_error():
    with pytest.raises(PipelineError, match="no month of the data"):
        labelled_months(date(2013, 1, 30), [1, 2])


def test_pushed_figures_carry_the_summary():
    summary = {
        "as_of": "2013-10-31",
        "model": "flight-delay",
        "drift": {
            "column_scores": {"origin": 0.01, "seats": 0.05},
            "drift_share": 0.5,
            "drift_detected": True,
        },
        "performance": {"roc_auc": 0.7, "alerts": []},
        "live": {
            "counts": {"joined": 10, "cancelled": 1, "unmatched": 2},
            "figures": [
                {
                    "role": "champion",
                    "version": "3",
                    "roc_auc": 0.71,
                    "calibration_gap": -0.01,
                    "ece": 0.04,
                }
            ],
        },
        "decision": "promote",
        "champion_version": "4",
    }
    text = generate_latest(cycle_registry(summary)).decode()
    for line in (
        'fd_cycle_drift_score{column="seats"} 0.05',
        "fd_cycle_drift_alert 1.0",
        'fd_cycle_live_roc_auc{role="champion",version="3"} 0.71',
        'fd_cycle_live_calibration_gap{role="champion",version="3"} -0.01',
        'fd_cycle_live_calibration_error{role="champion",version="3"} 0.04',
        'fd_cycle_live_rows{state="unmatched"} 2.0',
        'fd_cycle_decision{decision="promote"} 1.0',
        'fd_cycle_decision{decision="reject"} 0.0',
        "fd_cycle_champion_version 4.0",
        "fd_cycle_as_of_timestamp_seconds 1.3831776e+09",
    ):
        assert line in text, line
