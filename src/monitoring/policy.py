"""The monitoring cycle's policy, one step per month: retrain by the recipe (src/model/fit.py
`retrain`), gate the recipe's backtest against the champion on the latest labelled month
(src/model/gate.py `gate_decision`), decide. `python -m src.cycle` acts on the decision in
the registry; `make loop`'s sensitivity table replays the same step in memory under other
settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from src.common.config import Config
from src.common.schema import TARGET
from src.data.prepare import at_lead
from src.model.evaluate import binary_metrics
from src.model.features import request_columns
from src.model.fit import Retrained, retrain
from src.model.gate import GateResult, gate_decision
from src.model.model import FlightDelayModel


@dataclass(frozen=True)
class PolicyStep:
    retrained: Retrained  # retrained.model is the challenger
    gate: GateResult  # the backtest vs the champion on the latest labelled month: promote?
    champion_scores: np.ndarray  # on that month
    window_metrics: dict  # the backtest's on that month: the challenger's out-of-sample figures


def policy_step(
    labelled: pd.DataFrame,
    planes: pd.DataFrame,
    champion: FlightDelayModel,
    cfg: Config,
    fit: Callable[..., Retrained] = retrain,
) -> PolicyStep:
    """The policy on every labelled month: a challenger, and whether it replaces `champion`.
    `fit` is `retrain`, or a memo of it (the sensitivity table shares fits across settings)."""
    retrained = fit(labelled, planes, cfg, cfg.cycle.early_stopping_patience, cfg.cycle.max_trees)
    latest = labelled[labelled["month"] == retrained.latest_month]
    window = at_lead(latest, cfg.split.served_lead_hours)  # each flight once, as served
    cols, y = request_columns(window), window[TARGET].to_numpy()
    champion_scores, backtest = champion.predict_proba(cols), retrained.backtest.predict_proba(cols)
    result = gate_decision(y, champion_scores, backtest, cfg)
    return PolicyStep(retrained, result, champion_scores, binary_metrics(y, backtest))
