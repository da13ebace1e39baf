"""FLTrust (Cao et al. 2021, https://arxiv.org/abs/2012.13995).

The server trains the global model on a small clean root set to get its own update
``g0``. Each client's trust score is ``relu(cos(g_i, g0))``; updates are rescaled to
``||g0||`` and averaged weighted by trust. Clients with trust 0 are flagged.
"""

from __future__ import annotations

import numpy as np

from fedrobust.robust.defenses.base import Combined, Defense, Updates, register_defense


@register_defense("fltrust")
class FLTrust(Defense):
    """Trust-weighted, norm-matched average against the server's root update."""

    options = frozenset({"root_samples", "root_epochs"})

    needs_reference = True
    bucketable = False  # it scores each client against the root update

    def combine(self, updates: Updates) -> Combined:
        if updates.reference is None:
            raise ValueError("fltrust needs the server's root update")
        g0 = updates.reference
        g0_norm = float(np.linalg.norm(g0))
        norms = np.maximum(np.linalg.norm(updates.deltas, axis=1), 1e-12)
        cosine = updates.deltas @ g0 / (norms * max(g0_norm, 1e-12))
        trust = np.maximum(cosine, 0.0)
        flagged = [pid for pid, t in zip(updates.ids, trust, strict=True) if t == 0]
        scores = zip(updates.ids, trust, strict=True)
        detail = {"trust": {str(p): round(float(t), 4) for p, t in scores}}
        if trust.sum() == 0:
            return Combined(np.zeros_like(g0), flagged, detail)
        rescaled = updates.deltas * (g0_norm / norms)[:, None]
        delta = (trust[:, None] * rescaled).sum(axis=0) / trust.sum()
        return Combined(delta, flagged, detail)
