"""Divide-and-Conquer, DnC (Shejwalkar & Houmansadr, NDSS 2021,
https://www.ndss-symposium.org/ndss-paper/manipulating-the-byzantine-optimizing-model-poisoning-attacks-and-defenses-for-federated-learning/).

Each of ``defense.iterations`` rounds of filtering draws a random subsample of
``defense.subsample`` coordinates, centres the updates restricted to them, takes the
top right singular vector ``v`` of the centred matrix and scores each update by
``(<x_i - mu, v>)^2``; the ``c * f`` highest scores (``c`` = ``defense.filter_factor``)
are removed. The updates kept by every iteration (the intersection) are averaged,
weighted by example counts; the others are flagged. Assumes ``f`` attackers with
``n - c * f >= 1``. The coordinate subsample is protecting randomness (secret source,
seed-derived under ``defense.reproducible``).
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


def outlier_scores(rows: np.ndarray) -> np.ndarray:
    """``(<x_i - mu, v>)^2`` with ``v`` the top right singular vector of the centred rows."""
    centred = rows - rows.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[0]) ** 2


@register_defense("dnc")
class DnC(Defense):
    """Spectral outlier removal on random coordinate subsamples."""

    options = frozenset({"num_malicious", "iterations", "subsample", "filter_factor"})

    def removed(self, n: int) -> int:
        """Updates each iteration removes: ``c * f``, leaving at least one."""
        return min(n - 1, int(self.cfg.filter_factor * self.num_malicious))

    def combine(self, updates: Updates) -> Combined:
        n, d = updates.deltas.shape
        cut = self.removed(n)
        kept = set(range(n))
        for _ in range(self.cfg.iterations):
            coords = self.rng().choice(d, size=min(d, self.cfg.subsample), replace=False)
            scores = outlier_scores(updates.deltas[:, np.sort(coords)])
            kept &= set(np.argsort(scores, kind="stable")[: n - cut].tolist())
        rows = sorted(kept)
        flagged = [updates.ids[i] for i in range(n) if i not in kept]
        delta = weighted_mean(updates.deltas[rows], updates.weights[rows])
        return Combined(delta, flagged, {"selected": [updates.ids[i] for i in rows]})
