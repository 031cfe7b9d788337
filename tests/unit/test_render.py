"""The figures of the model card and reports (src/common/render.py's `fmt` filter)."""

from __future__ import annotations

import numpy as np
import pytest

from src.common.render import fmt


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "–"),  # a metric the run did not log
        (0, "0"),
        (27_034, "27,034"),
        (27_034.0, "27,034"),  # MLflow logs counts (rows) as floats
        (np.int64(1_234_567), "1,234,567"),
        (0.7312345, "0.7312"),
        (0.14, "0.1400"),
        (1.0, "1.0000"),  # a perfect AUC is a score, not a count
        (np.float64(0.25), "0.2500"),
    ],
)
def test_fmt(value, text):
    assert fmt(value) == text


def test_fmt_digits():
    assert fmt(0.123456, digits=2) == "0.12"
