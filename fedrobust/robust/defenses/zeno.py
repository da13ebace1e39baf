"""Zeno: suspicion-based aggregation (Xie, Koyejo & Gupta, ICML 2019,
https://arxiv.org/abs/1805.10032).

The server scores each update by how much it lowers the loss on its clean root set,
penalised by its size (the paper's stochastic descendant score, with the update in place
of ``-lr * gradient``)::

    score_i = L(w) - L(w + delta_i) - rho * ||delta_i||^2

and averages, weighted by example counts, the ``n - f`` best-scoring updates; the ``f``
lowest are flagged. ``f`` is the number of attackers the rule assumes
(``defense.num_malicious``), ``L`` the mean cross-entropy on the root set (drawn like
FLTrust's, ``defense.root_samples``). An update that pushes the model away from the
data, as sign flipping and label flipping do, scores below the honest ones however
the clients' data differ.
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

    options = frozenset({"num_malicious", "root_samples", "rho"})

    needs_probe = True
    bucketable = False  # it scores each client's own update on the root set

    def combine(self, updates: Updates) -> Combined:
        if updates.probe is None:
            raise ValueError("zeno needs the server's root-set loss")
        before = updates.probe(np.zeros(updates.deltas.shape[1]))
        losses = np.array([updates.probe(d) for d in updates.deltas])
        scores = descendant_scores(before, losses, updates.deltas, self.cfg.rho)
        keep = max(1, len(scores) - self.num_malicious)
        order = np.argsort(-scores, kind="stable")  # best first; ties keep the reply order
        kept = np.sort(order[:keep])
        flagged = sorted(updates.ids[i] for i in order[keep:])
        named = zip(updates.ids, scores, strict=True)
        detail = {"score": {str(p): round(float(s), 6) for p, s in named}}
        return Combined(weighted_mean(updates.deltas[kept], updates.weights[kept]), flagged, detail)


def descendant_scores(
    before: float, after: np.ndarray, deltas: np.ndarray, rho: float
) -> np.ndarray:
    """Zeno's ``L(w) - L(w + delta_i) - rho * ||delta_i||^2`` for each row."""
    return before - after - rho * np.einsum("ij,ij->i", deltas, deltas)
