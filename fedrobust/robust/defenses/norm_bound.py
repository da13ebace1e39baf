"""Norm bounding (Sun et al. 2019, https://arxiv.org/abs/1911.07963).

Each update is scaled down to at most ``clip_norm`` (default: the round's median update
norm), then the updates are averaged by example counts. A clipping rule keeps every
client, so it flags none: it reports ``clipped_share``, the share of updates it scaled
down.
"""

from __future__ import annotations

import numpy as np

from fedrobust.robust.defenses.base import (
    Combined,
    Defense,
    Updates,
    clipped_share,
    register_defense,
    weighted_mean,
)


@register_defense("norm_bound")
class NormBound(Defense):
    """Clips update norms; reports the share of updates it clipped."""

    options = frozenset({"clip_norm"})

    selects_clients = False

    def combine(self, updates: Updates) -> Combined:
        norms = np.linalg.norm(updates.deltas, axis=1)
        bound = self.cfg.clip_norm if self.cfg.clip_norm is not None else float(np.median(norms))
        factors = np.minimum(1.0, bound / np.maximum(norms, 1e-12))
        clipped = updates.deltas * factors[:, None]
        detail = {"clip_norm": bound, "clipped_share": clipped_share(factors)}
        return Combined(weighted_mean(clipped, updates.weights), [], detail)
