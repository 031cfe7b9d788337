"""The model card reports test ROC AUC by lead, in lead order, and names the served lead."""

from __future__ import annotations

from src.registry.card import render_model_card
from tests.unit.test_explain import CARD_META  # the card's other fields

META = CARD_META | {
    "metrics": {
        "test_roc_auc": 0.7512,
        # as MLflow hands them back: in name order, so 24h sorts before 2h
        "test_roc_auc_lead_1h": 0.7561,
        "test_roc_auc_lead_24h": 0.7003,
        "test_roc_auc_lead_2h": 0.7512,
        "test_roc_auc_lead_4h": 0.7402,
        "test_roc_auc_lead_6h": 0.7311,
    },
}


def test_the_card_lists_roc_auc_by_lead_in_hours_order():
    card = render_model_card(META, {"split_served_lead_hours": "2.0"})
    rows = [line for line in card.splitlines() if line.startswith("| ") and " h | " in line]
    assert rows == [
        "| 1 h | 0.7561 |",
        "| 2 h | 0.7512 |",
        "| 4 h | 0.7402 |",
        "| 6 h | 0.7311 |",
        "| 24 h | 0.7003 |",
    ]
    assert "at the served lead (2.0 h)" in card


def test_a_card_without_lead_metrics_has_no_lead_table():
    card = render_model_card(META | {"metrics": {"test_roc_auc": 0.71}}, {})
    assert "by lead" not in card
