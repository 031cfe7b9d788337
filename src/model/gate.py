"""Champion/challenger gate: promote only a challenger that is better beyond noise.

The ranking gain is judged by a paired bootstrap: the same resampled rows score both models,
so the noise they share (a hard month, a lucky day) cancels out of the difference. Each
resample is a vector of row multiplicities, and its AUC the Mann-Whitney count of ordered
(positive, negative) pairs read off a cumulative sum over negatives sorted once: no sort in
the loop, and exact, as sklearn's roc_auc_score on the resampled rows. Calibration is judged
by log loss and, given the monitor's limit, the ECE.
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

    def as_dict(self) -> dict:  # JSON-ready: `decide` fills each field with a plain value
        return asdict(self)


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


def bootstrap_indices(y: np.ndarray, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks of resampled row indices, one resample per row, n_boot in all, deterministic
    for a seed. Single-class resamples are replaced by further draws: each has an AUC."""
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
    """ROC AUC of each row of `counts` (one resample's row multiplicities). Mann-Whitney:
    a positive wins 1 per negative below it and 1/2 per tie, (below + below-or-equal) / 2."""
    positives, negatives, lo, hi = lookup
    below = np.zeros((len(counts), len(negatives) + 1))
    np.cumsum(counts[:, negatives], axis=1, out=below[:, 1:])
    weights = counts[:, positives]
    twice_wins = (weights * (below[:, lo] + below[:, hi])).sum(axis=1)
    return 0.5 * twice_wins / (weights.sum(axis=1) * below[:, -1])


def bootstrap_counts(y: np.ndarray, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """`bootstrap_indices` as blocks of (resamples x rows) multiplicities."""
    n = len(y)
    for idx in bootstrap_indices(y, n_boot, seed):
        offsets = (np.arange(len(idx)) * n)[:, None]
        counts = np.bincount((idx + offsets).ravel(), minlength=len(idx) * n)
        yield counts.reshape(len(idx), n).astype(float)


def bootstrap_aucs(y: np.ndarray, p: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """One model's AUC on each of n_boot resamples (checked inputs)."""
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
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    y, p_champion, p_challenger = check_inputs(y, p_champion, p_challenger)
    gain = roc_auc_score(y, p_challenger) - roc_auc_score(y, p_champion)
    gains = bootstrap_auc_gains(y, p_champion, p_challenger, n_boot, seed)
    low, high = np.quantile(gains, [alpha / 2, 1 - alpha / 2])
    return float(gain), float(low), float(high)


def _auc_clause(gain: float, low: float, high: float, alpha: float, floor: float):
    level = f"{100 * (1 - alpha):g}%"
    op = ">" if low > floor else "<="
    return low > floor, (
        f"AUC gain {gain:+.4f} ({level} CI {low:+.4f}..{high:+.4f}; low {op} {floor:+.4f})"
    )


def _log_loss_clause(challenger: float, champion: float, allowed: float):
    limit = champion + allowed
    op = "<=" if challenger <= limit else ">"
    extra = f" (champion {champion:.4f} + {allowed:.4f} allowed)" if allowed else " (champion)"
    return challenger <= limit, f"log loss {challenger:.4f} {op} {limit:.4f}{extra}"


def _ece_clause(challenger: float, champion: float, limit: float):
    """A challenger fails only when it would set off the monitor's calibration alarm and the
    champion does not. When both are above the limit the alarm rings either way, and the
    log-loss clause judges which is better calibrated (a 0.0001 difference in ECE is not
    evidence)."""
    if challenger <= limit:
        return True, f"ECE {challenger:.4f} <= {limit}"
    if champion <= limit:
        return False, f"ECE {challenger:.4f} > {limit} where the champion's is {champion:.4f}"
    return True, f"ECE {challenger:.4f} > {limit}, as the champion's {champion:.4f}"


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
    `max_calibration_error` (the monitor's limit), the `_ece_clause` holds (None: no ECE rule)."""
    if max_log_loss_increase < 0:
        raise ValueError(f"max_log_loss_increase must be >= 0, got {max_log_loss_increase}")
    y, p_champion, p_challenger = check_inputs(y, p_champion, p_challenger)
    gain, low, high = paired_bootstrap_auc_gain(y, p_champion, p_challenger, n_boot, seed, alpha)
    models = (p_champion, p_challenger)
    loss = [float(log_loss(y, p, labels=[0, 1])) for p in models]
    ece = [expected_calibration_error(y, p) for p in models]
    clauses = [
        _auc_clause(gain, low, high, alpha, min_auc_gain),
        _log_loss_clause(loss[1], loss[0], max_log_loss_increase),
    ]
    if max_calibration_error is not None:
        clauses.append(_ece_clause(ece[1], ece[0], max_calibration_error))
    texts = [text for _, text in clauses]
    return GateResult(
        promote=all(passes for passes, _ in clauses),
        reason=", ".join(texts[:-1]) + " and " + texts[-1],
        rows=len(y),
        champion_auc=float(roc_auc_score(y, p_champion)),
        challenger_auc=float(roc_auc_score(y, p_challenger)),
        auc_gain=gain,
        ci_low=low,
        ci_high=high,
        champion_log_loss=loss[0],
        challenger_log_loss=loss[1],
        champion_ece=ece[0],
        challenger_ece=ece[1],
    )


def gate_decision(y, p_champion, p_challenger, cfg: Config) -> GateResult:
    """`decide` with the config's gate settings (`register --gate`, the cycle, the loop)."""
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
