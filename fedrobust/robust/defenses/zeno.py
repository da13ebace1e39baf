"""Zeno: suspicion-based aggregation (Xie, Koyejo & Gupta, ICML 2019,
https://arxiv.org/abs/1805.10032).

The server scores each update by how much a step along it lowers the loss on its clean
root set, penalised by its size (the paper's stochastic descendant score)::

    score_i = L(w) - L(w + step * delta_i) - rho * ||delta_i||^2

and averages, weighted by example counts, the ``n - f`` best-scoring updates; the ``f``
lowest are flagged. ``f`` is the number of attackers the rule assumes
(``defense.num_malicious``), ``L`` the mean cross-entropy on the root set (drawn like
FLTrust's, ``defense.root_samples``).

In the paper the candidate is a gradient and the step the learning rate: the score asks
whether the candidate is a descent direction. A client's update is many local steps on
its own data; on non-IID clients the whole of it overfits that client's classes and
raises the root loss for honest and malicious clients alike. ``step`` (``defense.step``,
default ``1 / n``: the update's share of the mean) keeps the probe near ``w``, where the
score is about ``-step * <grad L(w), delta_i>``: positive for an honest update that
descends, negative for a sign-flipped one.
"""

from __future__ import annotations

import numpy as np

from fedrobust.robust.defenses.base import (
    Combined,
    Defense,
    Updates,
    register_defense,
    weighted_mean,
)


@register_defense("zeno")
class Zeno(Defense):
    """Keeps the ``n - f`` updates that lower the root-set loss most."""

    options = frozenset({"num_malicious", "root_samples", "rho", "step"})

    needs_probe = True
    bucketable = False  # it scores each client's own update on the root set

    def combine(self, updates: Updates) -> Combined:
        if updates.probe is None:
            raise ValueError("zeno needs the server's root-set loss")
        step = self.cfg.step if self.cfg.step is not None else 1.0 / len(updates.ids)
        before = updates.probe(np.zeros(updates.deltas.shape[1]))
        losses = np.array([updates.probe(step * d) for d in updates.deltas])
        scores = descendant_scores(before, losses, updates.deltas, self.cfg.rho)
        keep = max(1, len(scores) - self.num_malicious)
        order = np.argsort(-scores, kind="stable")  # best first; ties keep the reply order
        kept = np.sort(order[:keep])
        flagged = sorted(updates.ids[i] for i in order[keep:])
        # a non-finite score (an update that overflows the loss) ranks last, written as null
        named = zip(updates.ids, scores, strict=True)
        detail = {
            "score": {str(p): round(float(v), 6) if np.isfinite(v) else None for p, v in named}
        }
        return Combined(weighted_mean(updates.deltas[kept], updates.weights[kept]), flagged, detail)


def descendant_scores(
    before: float, after: np.ndarray, deltas: np.ndarray, rho: float
) -> np.ndarray:
    """Zeno's ``L(w) - L(w + step * delta_i) - rho * ||delta_i||^2`` for each row, given
    ``before = L(w)`` and ``after[i] = L(w + step * delta_i)``."""
    return before - after - rho * np.einsum("ij,ij->i", deltas, deltas)
