"""app/metrics.py: `observe_scores` puts every probability in its bucket of
fd_prediction_score (a value equal to a bound counts in that bucket), with the count and sum,
under the role and version given."""

from __future__ import annotations

import numpy as np
import pytest

from app import metrics


def series(role: str, version: str) -> dict[str, float]:
    """fd_prediction_score's samples for one role and version: bucket (by le), count, sum."""
    [histogram] = [m for m in metrics.REGISTRY.collect() if m.name == "fd_prediction_score"]
    return {
        s.name.removeprefix("fd_prediction_score_") + s.labels.get("le", ""): s.value
        for s in histogram.samples
        if (s.labels["role"], s.labels["version"]) == (role, version)
        and not s.name.endswith("_created")  # when the series began: not a count
    }


def test_observe_scores_counts_each_probability_in_its_bucket():
    proba = np.array([0.0, 0.05, 0.0501, 0.3, 0.999, 1.0, 0.45])
    metrics.observe_scores("challenger", "test-observe-scores", proba)
    metrics.observe_scores("challenger", "test-observe-scores", np.array([0.12]))

    got = series("challenger", "test-observe-scores")
    cumulative = {"0.05": 2, "0.1": 3, "0.15": 4, "0.2": 4, "0.25": 4, "0.3": 5, "0.4": 5,
                  "0.5": 6, "0.6": 6, "0.8": 6, "1.0": 8, "+Inf": 8}  # fmt: skip
    assert got == {
        **{f"bucket{le}": float(n) for le, n in cumulative.items()},
        "count": 8.0,
        "sum": pytest.approx(proba.sum() + 0.12, abs=1e-12),
    }
    assert series("champion", "test-observe-scores") == {}  # the role is a label of its own
