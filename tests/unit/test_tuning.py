"""Time-series folds and the tuning verdict, on small frames (the search itself runs on the
smoke slice in tests/integration/test_tune.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from src.common.config import Split, load_config
from src.common.errors import PipelineError
from src.common.paths import DEFAULT_CONFIG, ROOT, SMOKE_CONFIG
from src.model.tuning import FoldResult, compare, cv_folds, verdict

CFG = load_config(SMOKE_CONFIG)


def cfg_with_split(**split):
    base = {"train_months": [1, 2, 3], "validation_months": [4], "test_months": [5]}
    return CFG.model_copy(update={"name": "t", "split": Split(**(base | split))})


def months(*ms) -> pd.DataFrame:
    return pd.DataFrame({"month": [m for m in ms for _ in range(3)]})


def test_folds_expand_month_by_month_and_never_read_test_months():
    cfg = cfg_with_split(cv_months=[2, 3, 4])
    folds = cv_folds(months(1, 2, 3, 4, 5), cfg)
    assert [f.month for f in folds] == [2, 3, 4]
    assert [sorted(f.train["month"].unique()) for f in folds] == [[1], [1, 2], [1, 2, 3]]
    assert all(set(f.validation["month"]) == {f.month} for f in folds)
    assert not any((f.train["month"] == 5).any() for f in folds)


def test_no_folds_is_an_error_naming_the_config():
    with pytest.raises(PipelineError, match="config 't': split.cv_months is empty"):
        cv_folds(months(1, 2), cfg_with_split())


def test_a_fold_without_rows_is_an_error():
    with pytest.raises(PipelineError, match="cv fold 3: no rows"):
        cv_folds(months(1, 2, 4), cfg_with_split(cv_months=[3]))


@pytest.mark.parametrize(
    ("cv_months", "message"),
    [([5], "cv month 5 is outside the train and validation months"), ([1], "no earlier month")],
)
def test_cv_months_stay_inside_the_training_window(cv_months, message):
    with pytest.raises(ValueError, match=message):
        cfg_with_split(cv_months=cv_months)


def result(month, y, p) -> FoldResult:
    return FoldResult(month, 10, log_loss(y, p), roc_auc_score(y, p), y, p)


def test_compare_wins_only_beyond_the_bootstraps_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000).astype(float)
    truth = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.15, len(y)), 0.02, 0.98)
    noisy = np.clip(truth + rng.normal(0, 0.2, len(y)), 0.02, 0.98)
    halves = [slice(0, 2000), slice(2000, 4000)]

    def folds(p):
        return [result(m, y[h], p[h]) for m, h in zip((6, 7), halves, strict=True)]

    better = compare(folds(noisy), folds(truth), n_boot=200, seed=1, alpha=0.05)
    assert better.wins and better.log_loss_high < 0 < better.auc_low
    assert better.best_log_loss < better.current_log_loss
    worse = compare(folds(truth), folds(noisy), n_boot=200, seed=1, alpha=0.05)
    assert not worse.wins and worse.log_loss_low > 0
    same = compare(folds(truth), folds(truth), n_boot=200, seed=1, alpha=0.05)
    assert not same.wins and same.log_loss_change == 0

    # The verdict written into configs/tuned.yml: a re-run after adopting says so.
    current, other = CFG.train.lightgbm, CFG.train.lightgbm.model_copy(update={"num_leaves": 7})
    assert verdict(CFG, other, better).startswith("WINS")
    assert verdict(CFG, other, worse).startswith("does not win")
    assert verdict(CFG, current.model_copy(update={"n_estimators": 9}), same).startswith(
        "ALREADY ADOPTED"
    )


def test_default_config_adopts_the_tuned_parameters_only_if_they_won():
    """configs/tuned.yml is `make tune`'s output; configs/default.yml may take its LightGBM
    parameters only if its verdict (written from the folds, never the test months) says they
    win. Winning does not oblige: docs/model-development.md says why the current win is held
    back."""
    path = ROOT / "configs" / "tuned.yml"
    text = path.read_text().splitlines()
    verdict = next(line for line in text if line.startswith("# Verdict"))
    default, tuned = load_config(DEFAULT_CONFIG), load_config(path)
    if default.train.lightgbm == tuned.train.lightgbm:
        assert verdict.startswith(("# Verdict: WINS", "# Verdict: ALREADY ADOPTED")), verdict
    # It was tuned on the folds, seed and training settings the default still has.
    assert (tuned.split, tuned.seed) == (default.split, default.seed)
    assert tuned.train.model_dump(exclude={"lightgbm"}) == default.train.model_dump(
        exclude={"lightgbm"}
    )
