"""Champion/challenger gate: promote only a challenger that is better beyond noise.

Pure statistics over one labelled window (numpy + sklearn, no MLflow). The ranking gain is
judged by a paired bootstrap: the same resampled rows score both models, so the noise the two
models share (a hard month, a lucky day) cancels out of the difference. Calibration is judged
on the full window by log loss and, given the monitor's limit, by the expected calibration
error: a challenger is not promoted into the calibration alarm the champion keeps clear of.

The bootstrap AUC needs no sorting inside the loop: each resample is a vector of row
multiplicities, and the Mann-Whitney statistic is a weighted count of (positive, negative)
pairs in order, read off a cumulative sum over each model's negatives sorted once. Every sum is
over integer counts, so the result is exact up to the final division: it matches sklearn's
roc_auc_score on the resampled rows (27k rows x 1000 resamples: about 2 s on one core, against
about 50 s for roc_auc_score in a loop).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

from src.common.config import Config
from src.model.evaluate import expected_calibration_error

BLOCK_CELLS = 2_000_000  # resamples are drawn in blocks of about this many row indices
MAX_DRAWS_PER_RESAMPLE = 100  # give up when nearly every resample has a single class


@dataclass(frozen=True)
class GateResult:
    promote: bool
    reason: str
    rows: int
    champion_auc: float
    challenger_auc: float
    auc_gain: float
    ci_low: float
    ci_high: float
    champion_log_loss: float
    challenger_log_loss: float
    champion_ece: float
    challenger_ece: float

    def as_dict(self) -> dict:
        """Plain Python bools, ints, floats and str (JSON-serialisable)."""
        out = asdict(self)
        out["promote"], out["rows"] = bool(self.promote), int(self.rows)
        return {k: v if isinstance(v, bool | int | str) else float(v) for k, v in out.items()}


# ---------------------------------------------------------------- validation
def check_inputs(y, *probabilities) -> tuple[np.ndarray, ...]:
    """Labels as 0/1 floats and probabilities as floats; ValueError naming the rule broken."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1 (1 = delayed)")
    y = y.astype(float)
    if y.min() == y.max():
        raise ValueError(
            f"labels hold one class only (all {int(y[0])}); AUC needs both classes present"
        )
    out = [y]
    for name, p in zip(("champion", "challenger"), probabilities, strict=False):
        p = np.asarray(p, dtype=float)
        if p.shape != y.shape:
            raise ValueError(
                f"{name} probabilities have length {len(p) if p.ndim else 0}, labels have "
                f"{len(y)}; both models must score the same rows"
            )
        if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
            raise ValueError(f"{name} probabilities must be finite and within [0, 1]")
        out.append(p)
    return tuple(out)


def _check_settings(n_boot: int, alpha: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


# ---------------------------------------------------------------- bootstrap
def bootstrap_indices(y: np.ndarray, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks of resampled row indices, one resample per row of a block, n_boot in all.

    Resamples holding a single class are dropped and replaced by further draws, so every
    resample has an AUC. Deterministic for a seed.
    """
    n, rng = len(y), np.random.default_rng(seed)
    block = max(1, min(n_boot, BLOCK_CELLS // n))
    left, drawn = n_boot, 0
    while left > 0:
        if drawn >= MAX_DRAWS_PER_RESAMPLE * n_boot:
            raise ValueError(
                f"{n} rows with {int(y.sum())} positives: almost every bootstrap resample "
                "holds a single class; the window is too small for the gate"
            )
        idx = rng.integers(0, n, size=(block, n), dtype=np.int32)
        drawn += block
        positives = y[idx].sum(axis=1)
        idx = idx[(positives > 0) & (positives < n)][:left]
        left -= len(idx)
        if len(idx):
            yield idx


def rank_lookup(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sort one model's negatives by score once; for each positive, how many negatives score
    below it (lo) and below or equal to it (hi)."""
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    negatives = negatives[np.argsort(p[negatives], kind="stable")]
    scores = p[negatives]
    lo = np.searchsorted(scores, p[positives], side="left")
    hi = np.searchsorted(scores, p[positives], side="right")
    return positives, negatives, lo, hi


def auc_from_counts(counts: np.ndarray, lookup: tuple[np.ndarray, ...]) -> np.ndarray:
    """ROC AUC of each row of `counts` (the row multiplicities of one resample each).

    Mann-Whitney: each positive wins 1 per negative scored below it and 1/2 per tie, i.e.
    (negatives below + negatives below-or-equal) / 2, weighted by the multiplicities.
    """
    positives, negatives, lo, hi = lookup
    below = np.zeros((len(counts), len(negatives) + 1))
    np.cumsum(counts[:, negatives], axis=1, out=below[:, 1:])
    weights = counts[:, positives]
    twice_wins = (weights * (below[:, lo] + below[:, hi])).sum(axis=1)
    return 0.5 * twice_wins / (weights.sum(axis=1) * below[:, -1])


def bootstrap_counts(y: np.ndarray, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """The resamples of `bootstrap_indices` as row multiplicities: blocks of (resamples x
    rows) floats, what `auc_from_counts` reads."""
    n = len(y)
    for idx in bootstrap_indices(y, n_boot, seed):
        offsets = (np.arange(len(idx)) * n)[:, None]
        counts = np.bincount((idx + offsets).ravel(), minlength=len(idx) * n)
        yield counts.reshape(len(idx), n).astype(float)


def bootstrap_aucs(y: np.ndarray, p: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """One model's AUC on each of n_boot resamples (checked inputs): for an interval."""
    lookup = rank_lookup(y, p)
    return np.concatenate([auc_from_counts(c, lookup) for c in bootstrap_counts(y, n_boot, seed)])


def bootstrap_auc_gains(
    y: np.ndarray, p_champion: np.ndarray, p_challenger: np.ndarray, n_boot: int, seed: int
) -> np.ndarray:
    """AUC_challenger - AUC_champion on each of n_boot paired resamples (checked inputs)."""
    champion, challenger = (rank_lookup(y, p) for p in (p_champion, p_challenger))
    gains = [
        auc_from_counts(counts, challenger) - auc_from_counts(counts, champion)
        for counts in bootstrap_counts(y, n_boot, seed)
    ]
    return np.concatenate(gains)


def paired_bootstrap_auc_gain(
    y, p_champion, p_challenger, n_boot: int = 1000, seed: int = 42, alpha: float = 0.05
) -> tuple[float, float, float]:
    """(gain on the full window, CI low, CI high): the percentile interval at 1 - alpha of
    AUC_challenger - AUC_champion over n_boot paired resamples."""
    _check_settings(n_boot, alpha)
    y, p_champion, p_challenger = check_inputs(y, p_champion, p_challenger)
    gain = roc_auc_score(y, p_challenger) - roc_auc_score(y, p_champion)
    gains = bootstrap_auc_gains(y, p_champion, p_challenger, n_boot, seed)
    low, high = np.quantile(gains, [alpha / 2, 1 - alpha / 2])
    return float(gain), float(low), float(high)


# ---------------------------------------------------------------- decision
def _auc_clause(gain: float, low: float, high: float, alpha: float, floor: float) -> str:
    level = f"{100 * (1 - alpha):g}%"
    op = ">" if low > floor else "<="
    return f"AUC gain {gain:+.4f} ({level} CI {low:+.4f}..{high:+.4f}; low {op} {floor:+.4f})"


def _log_loss_clause(challenger: float, champion: float, allowed: float) -> str:
    limit = champion + allowed
    op = "<=" if challenger <= limit else ">"
    extra = f" (champion {champion:.4f} + {allowed:.4f} allowed)" if allowed else " (champion)"
    return f"log loss {challenger:.4f} {op} {limit:.4f}{extra}"


def sets_off_the_alarm(challenger: float, champion: float, limit: float) -> bool:
    """The ECE rule: a challenger fails only when it would set off the monitor's calibration
    alarm and the champion does not. When both are above the limit the alarm rings either
    way, and the log-loss clause judges which is better calibrated (a 0.0001 difference in
    ECE is not evidence)."""
    return challenger > limit >= champion


def _ece_clause(challenger: float, champion: float, limit: float) -> str:
    if challenger <= limit:
        return f"ECE {challenger:.4f} <= {limit}"
    if sets_off_the_alarm(challenger, champion, limit):
        return f"ECE {challenger:.4f} > {limit} where the champion's is {champion:.4f}"
    return f"ECE {challenger:.4f} > {limit}, as the champion's {champion:.4f}"


def decide(
    y,
    p_champion,
    p_challenger,
    n_boot: int = 1000,
    seed: int = 42,
    alpha: float = 0.05,
    max_log_loss_increase: float = 0.0,
    min_auc_gain: float = 0.0,
    max_calibration_error: float | None = None,
) -> GateResult:
    """Promote only if the lower bound of the AUC gain's CI is above `min_auc_gain` (0: a
    gain beyond noise; negative: no worse than the champion by more than that margin), the
    challenger's log loss is at most the champion's plus `max_log_loss_increase`, and, given
    `max_calibration_error` (the monitor's limit), the challenger's ECE is at most that limit
    or at most the champion's (None: no ECE rule)."""
    if max_log_loss_increase < 0:
        raise ValueError(f"max_log_loss_increase must be >= 0, got {max_log_loss_increase}")
    y, p_champion, p_challenger = check_inputs(y, p_champion, p_challenger)
    gain, low, high = paired_bootstrap_auc_gain(y, p_champion, p_challenger, n_boot, seed, alpha)
    calibrated, clauses, figures = _calibration(
        y, p_champion, p_challenger, max_log_loss_increase, max_calibration_error
    )
    clauses.insert(0, _auc_clause(gain, low, high, alpha, min_auc_gain))
    return GateResult(
        promote=bool(low > min_auc_gain and calibrated),
        reason=", ".join(clauses[:-1]) + " and " + clauses[-1],
        rows=len(y),
        champion_auc=float(roc_auc_score(y, p_champion)),
        challenger_auc=float(roc_auc_score(y, p_challenger)),
        auc_gain=gain,
        ci_low=low,
        ci_high=high,
        **figures,
    )


def _calibration(
    y, p_champion, p_challenger, max_log_loss_increase: float, max_calibration_error
) -> tuple[bool, list[str], dict[str, float]]:
    """(whether the challenger's calibration passes, the reason's clauses, log loss and ECE
    of both models) for checked inputs."""
    figures = {
        "champion_log_loss": float(log_loss(y, p_champion, labels=[0, 1])),
        "challenger_log_loss": float(log_loss(y, p_challenger, labels=[0, 1])),
        "champion_ece": expected_calibration_error(y, p_champion),
        "challenger_ece": expected_calibration_error(y, p_challenger),
    }
    champion, challenger = figures["champion_log_loss"], figures["challenger_log_loss"]
    passes = challenger <= champion + max_log_loss_increase
    clauses = [_log_loss_clause(challenger, champion, max_log_loss_increase)]
    if max_calibration_error is not None:
        champion, challenger = figures["champion_ece"], figures["challenger_ece"]
        passes &= not sets_off_the_alarm(challenger, champion, max_calibration_error)
        clauses.append(_ece_clause(challenger, champion, max_calibration_error))
    return passes, clauses, figures


def gate_decision(y, p_champion, p_challenger, cfg: Config) -> GateResult:
    """`decide` with the config's gate settings: what `register --gate`, the monitoring cycle
    and the loop's sensitivity table all call."""
    g = cfg.gate
    return decide(
        y,
        p_champion,
        p_challenger,
        n_boot=g.bootstrap,
        seed=cfg.seed,
        alpha=g.alpha,
        max_log_loss_increase=g.max_log_loss_increase,
        min_auc_gain=g.min_auc_gain,
        max_calibration_error=cfg.monitor.max_calibration_error,
    )
