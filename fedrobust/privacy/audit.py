"""One-run privacy audit: a statistical lower bound on epsilon from canary guesses.

Steinke, Nasr & Jagielski 2023, "Privacy auditing with one (1) training run",
https://arxiv.org/abs/2305.08846. Each of ``m`` canaries is included in training
independently with probability 1/2; after training, an auditor guesses "in" or "out"
for ``r`` of them and is right ``v`` times. For an (epsilon, delta)-DP mechanism the
paper's main theorem bounds the chance of that many correct guesses:

    P[W >= v] <= f(v) + 2 m delta * max_{i = 1..m} (f(v - i) - f(v)) / i,

with ``f(v) = P[Binomial(r, e^eps / (1 + e^eps)) >= v]`` (``f = 1`` for ``v <= 0``). An
epsilon whose bound falls below ``1 - confidence`` is rejected; the largest rejected
epsilon is the audit's lower bound. With delta = 0 this is the pure-DP statement: the
number of correct guesses is dominated by Binomial(r, e^eps / (1 + e^eps)).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GUESS_COUNTS = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
MAX_EPSILON = 100.0


def _tail(r: int, p: float, v: np.ndarray | int) -> np.ndarray:
    """``P[Binomial(r, p) >= v]`` elementwise (1 for v <= 0, 0 for v > r)."""
    from scipy.stats import binom  # scipy.stats: ~0.5 s, only for the audit itself

    v = np.asarray(v)
    return np.where(v <= 0, 1.0, binom.sf(v - 1, r, p))


def rejection_probability(
    epsilon: float, num_canaries: int, num_guesses: int, num_correct: int, delta: float
) -> float:
    """The theorem's bound on ``P[W >= num_correct]`` for an (epsilon, delta)-DP mechanism."""
    p = 1.0 / (1.0 + math.exp(-epsilon))
    f_v = float(_tail(num_guesses, p, num_correct))
    if delta == 0:
        return f_v
    shifts = np.arange(1, num_canaries + 1)
    gaps = (_tail(num_guesses, p, num_correct - shifts) - f_v) / shifts
    return f_v + 2 * num_canaries * delta * float(np.max(gaps))


def epsilon_lower_bound(
    num_canaries: int,
    num_guesses: int,
    num_correct: int,
    delta: float,
    confidence: float = 0.95,
) -> float:
    """The largest epsilon that ``num_correct`` of ``num_guesses`` rejects.

    Parameters
    ----------
    num_canaries : int
        m, the canaries each included with probability 1/2.
    num_guesses : int
        r, how many canaries the auditor guessed about (the rest abstained).
    num_correct : int
        v, how many guesses were right.
    delta : float
        The delta of the (epsilon, delta)-DP claim being tested.
    confidence : float
        1 - beta: an epsilon is rejected when the bound is at most beta.

    Returns
    -------
    float
        The lower bound on epsilon (0.0 when even epsilon = 0 is not rejected), found by
        bisection to 1e-4.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if not 0 <= num_guesses <= num_canaries:
        raise ValueError(f"num_guesses ({num_guesses}) must be in 0..num_canaries ({num_canaries})")
    if not 0 <= num_correct <= num_guesses:
        raise ValueError(f"num_correct ({num_correct}) must be in 0..num_guesses ({num_guesses})")
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    beta = 1 - confidence

    def rejected(eps: float) -> bool:
        return rejection_probability(eps, num_canaries, num_guesses, num_correct, delta) <= beta

    if num_guesses == 0 or not rejected(0.0):
        return 0.0
    low, high = 0.0, 1.0
    while rejected(high):
        low, high = high, 2 * high
        if high > MAX_EPSILON:
            return MAX_EPSILON
    while high - low > 1e-4:
        mid = (low + high) / 2
        low, high = (mid, high) if rejected(mid) else (low, mid)
    return low


@dataclass(frozen=True)
class AuditResult:
    """The outcome of a one-run audit at its best guess count."""

    num_canaries: int
    num_guesses: int
    num_correct: int
    epsilon_lower_bound: float
    confidence: float
    delta: float


def audit_from_scores(
    scores: np.ndarray,
    included: np.ndarray,
    delta: float,
    confidence: float = 0.95,
    guesses: int | Sequence[int] | None = None,
) -> AuditResult:
    """Guess membership from scores and bound epsilon.

    The auditor guesses "in" for the ``k`` highest scores and "out" for the ``k`` lowest
    (``r = 2k`` guesses), abstaining on the rest. Trying several guess counts and keeping
    the best is a multiple test: each count is tested at ``(1 - confidence) / counts``
    (Bonferroni), so the reported bound keeps its stated confidence.

    Parameters
    ----------
    scores : np.ndarray
        One score per canary; higher means "more likely included" (e.g. minus the loss).
    included : np.ndarray
        The true membership of each canary (booleans).
    delta : float
        The delta of the claim being tested.
    confidence : float
        Confidence of the bound.
    guesses : int or sequence of int, optional
        Total guess counts r to try (default: 10, 20, 50, ... up to m, and m itself).
    """
    scores = np.asarray(scores, dtype=np.float64)
    included = np.asarray(included, dtype=bool)
    if scores.shape != included.shape or scores.ndim != 1:
        raise ValueError(
            f"scores {scores.shape} and included {included.shape} must be 1-d of equal length"
        )
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite (a NaN or infinite score cannot be ranked)")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    m = len(scores)
    if m < 2:
        raise ValueError(f"an audit needs at least 2 canaries, got {m}")
    if guesses is None:
        counts = sorted({r for r in GUESS_COUNTS if r <= m} | {m})
    elif isinstance(guesses, numbers.Integral):
        counts = [int(guesses)]
    else:
        counts = [int(r) for r in guesses]
    if not counts:
        raise ValueError("give at least one guess count")
    for r in counts:
        if not 0 < r <= m:
            raise ValueError(f"guess count {r} must be in 1..{m} (the canaries)")
    order = np.argsort(-scores, kind="stable")
    per_test = 1 - (1 - confidence) / len(counts)
    best = AuditResult(m, 0, 0, 0.0, confidence, delta)
    for r in counts:
        k_in = r - r // 2
        k_out = r // 2
        correct = int(included[order[:k_in]].sum()) + int((~included[order[m - k_out :]]).sum())
        bound = epsilon_lower_bound(m, r, correct, delta, per_test)
        if bound > best.epsilon_lower_bound or best.num_guesses == 0:
            best = AuditResult(m, r, correct, bound, confidence, delta)
    return best
