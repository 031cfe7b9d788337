"""The monitoring cycle's retrain-and-gate policy, replayed in memory: the loop report's
sensitivity table. `make loop` replays the real cycle (a server, the registry, Evidently)
once, with the config's settings; this replays only its decision path, with the same
functions (src/model/fit.py `retrain`, src/model/gate.py `gate_decision`), under other
settings, to show that the outcome does not hang on one tuned number.

Each month: the champion scores the month; at its end the recipe retrains on every
labelled month and the gate compares its backtest model with the champion on that month;
a promoted refit serves the next month. Retrains depend only on (patience, month), so
settings that differ only in the gate share them.
"""

from __future__ import annotations

import logging
from functools import cache

import numpy as np
import pandas as pd

from src.common.config import Config
from src.common.schema import TARGET
from src.model.evaluate import binary_metrics
from src.model.features import request_columns
from src.model.fit import Retrained, fit_and_calibrate, retrain
from src.model.gate import gate_decision

log = logging.getLogger(__name__)
POOLED_MONTHS = [10, 11, 12]  # the acceptance window: October-December 2013
# One setting at a time around the config's value: (section, field, values).
VARIATIONS = (
    ("cycle", "early_stopping_patience", (10, 20, 30, 50, 100)),
    ("gate", "alpha", (0.01, 0.05, 0.2)),
    ("gate", "max_log_loss_increase", (0.0, 0.002, 0.01)),
    ("gate", "min_auc_gain", (0.0, -0.002, -0.005)),
)


def pooled_auc(y, month, loop, frozen, months=POOLED_MONTHS) -> dict:
    """ROC AUC of the loop's and the frozen model's scores over `months` pooled."""
    mask = np.isin(month, months)
    if not mask.any() or len(np.unique(y[mask])) < 2:
        return {}
    return {
        name: binary_metrics(y[mask], scores[mask])["roc_auc"]
        for name, scores in (("loop", loop), ("frozen", frozen))
    }


def with_setting(cfg: Config, section: str, field: str, value) -> Config:
    part = getattr(cfg, section).model_copy(update={field: value})
    return cfg.model_copy(update={section: part})


class PolicyReplay:
    """The replay's data and the fits every setting shares (cached)."""

    def __init__(self, cfg: Config, data: pd.DataFrame, planes: pd.DataFrame, months: list[int]):
        self.cfg, self.data, self.planes, self.months = cfg, data, planes, months
        split = cfg.split  # the loop's first champion: src.train's recipe on these months
        first = {
            "train": data[data["month"].isin(split.train_months)],
            "validation": data[data["month"].isin(split.validation_months)],
            "planes": planes,
        }
        self.frozen, _ = fit_and_calibrate("lightgbm", first, cfg)
        self._scores: dict[tuple[int, int], np.ndarray] = {}
        self._retrain = cache(self._fit)

    def month(self, m: int) -> pd.DataFrame:
        return self.data[self.data["month"] == m]

    def score(self, model, m: int) -> np.ndarray:
        key = (id(model), m)
        if key not in self._scores:
            self._scores[key] = model.predict_proba(request_columns(self.month(m)))
        return self._scores[key]

    def _fit(self, patience: int, latest: int) -> Retrained:
        labelled = self.data[self.data["month"] <= latest]
        return retrain(labelled, self.planes, self.cfg, patience, self.cfg.cycle.max_trees)

    def run(self, cfg: Config) -> dict:
        """Monthly AUC of the served champion under `cfg`'s settings, and the pooled figure."""
        champion, served, promotions = self.frozen, {}, 0
        for m in self.months:
            served[m] = self.score(champion, m)
            recipe = self._retrain(cfg.cycle.early_stopping_patience, m)
            y = self.month(m)[TARGET].to_numpy()
            result = gate_decision(y, served[m], self.score(recipe.backtest, m), cfg)
            if result.promote:
                champion, promotions = recipe.model, promotions + 1
        return self._figures(served, promotions)

    def _figures(self, served: dict, promotions: int) -> dict:
        y = {m: self.month(m)[TARGET].to_numpy() for m in self.months}
        gaps = [
            binary_metrics(y[m], served[m])["roc_auc"]
            - binary_metrics(y[m], self.score(self.frozen, m))["roc_auc"]
            for m in self.months
        ]
        pooled = pooled_auc(
            np.concatenate(list(y.values())),
            np.concatenate([np.full(len(y[m]), m) for m in self.months]),
            np.concatenate([served[m] for m in self.months]),
            np.concatenate([self.score(self.frozen, m) for m in self.months]),
        )
        return {"pooled": pooled, "worst_month_gap": min(gaps), "promotions": promotions}


def sensitivity(
    cfg: Config, data: pd.DataFrame, planes: pd.DataFrame, months: list[int]
) -> list[dict]:
    """The policy's outcome under each VARIATION, one setting changed at a time."""
    replay = PolicyReplay(cfg, data, planes, months)
    rows = []
    for section, field, values in VARIATIONS:
        for value in values:
            varied = with_setting(cfg, section, field, value)
            figures = replay.run(varied)
            chosen = getattr(getattr(cfg, section), field) == value
            rows.append(
                {"setting": f"{section}.{field}", "value": value, "chosen": chosen, **figures}
            )
            log.info("sensitivity %s.%s=%s: %s", section, field, value, figures)
    return rows
