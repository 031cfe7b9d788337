"""app/metrics.py: `observe_scores` fills fd_prediction_score exactly as one `observe()` per
probability would (it adds bucket counts through prometheus-client's own counters, which
have no public bulk call: a client upgrade that changes them fails here)."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from app import metrics


def samples(registry, name: str, labels: dict) -> dict[str, float]:
    """(sample name + le) -> value of one histogram's series: buckets, count, sum."""
    out = {}
    for metric in registry.collect():
        for s in metric.samples:
            created = s.name.endswith("_created")  # when the series was made: differs
            if s.name.startswith(name) and not created and labels.items() <= s.labels.items():
                out[s.name + s.labels.get("le", "")] = s.value
    return out


def test_observe_scores_equals_one_observe_per_probability():
    rng = np.random.default_rng(0)
    # Every bucket, its bounds exactly (observe() counts a value equal to a bound in it), 0, 1.
    proba = np.concatenate([rng.random(500), metrics.SCORE_BUCKETS, [0.0, 1.0]])
    labels = {"role": "challenger", "version": "test-observe-scores"}

    metrics.observe_scores(labels["role"], labels["version"], proba)

    reference = CollectorRegistry()
    one_by_one = Histogram(
        "fd_prediction_score",
        "reference",
        ["role", "version"],
        buckets=metrics.SCORE_BUCKETS,
        registry=reference,
    )
    for p in proba:
        one_by_one.labels(**labels).observe(p)
    got = samples(metrics.REGISTRY, "fd_prediction_score", labels)
    expected = samples(reference, "fd_prediction_score", labels)
    assert got.keys() == expected.keys() and len(got) == len(metrics.SCORE_BUCKETS) + 3
    assert {k: round(v, 9) for k, v in got.items()} == {k: round(v, 9) for k, v in expected.items()}
