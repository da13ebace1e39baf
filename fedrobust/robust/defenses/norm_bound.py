"""Norm bounding (Sun et al. 2019, https://arxiv.org/abs/1911.07963).

Each update is scaled down to at most ``clip_norm`` (default: the round's median update
norm), then the updates are averaged by example counts.
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


@register_defense("norm_bound")
class NormBound(Defense):
    """Clips update norms; flags the clients it clipped."""

    options = frozenset({"clip_norm"})

    def combine(self, updates: Updates) -> Combined:
        norms = np.linalg.norm(updates.deltas, axis=1)
        bound = self.cfg.clip_norm if self.cfg.clip_norm is not None else float(np.median(norms))
        factors = np.minimum(1.0, bound / np.maximum(norms, 1e-12))
        clipped = updates.deltas * factors[:, None]
        flagged = [pid for pid, f in zip(updates.ids, factors, strict=True) if f < 1.0]
        return Combined(weighted_mean(clipped, updates.weights), flagged, {"clip_norm": bound})
