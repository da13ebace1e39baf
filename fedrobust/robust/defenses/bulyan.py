"""Bulyan (El Mhamdi et al. 2018, https://arxiv.org/abs/1802.07927), from Flower's parts.

Flower's ``select_multikrum`` keeps ``n - 2f`` updates; Flower's
``aggregate_n_closest_weights`` then averages, per coordinate, the ``n - 4f`` values
closest to the coordinate's median, exactly as Flower's ``Bulyan`` strategy does (whose
``aggregate_train`` needs a live run's Messages). Needs ``n >= 4f + 3``.
"""

from __future__ import annotations

import numpy as np
from flwr.serverapp.strategy.bulyan import aggregate_n_closest_weights
from flwr.serverapp.strategy.multikrum import select_multikrum

from fedrobust.robust.defenses._flower import as_contents
from fedrobust.robust.defenses.base import Combined, Defense, Updates, register_defense


@register_defense("bulyan")
class Bulyan(Defense):
    """Multi-Krum selection, then a trimmed mean around the coordinate-wise median."""

    options = frozenset({"num_malicious"})

    def combine(self, updates: Updates) -> Combined:
        n, f = len(updates.ids), self.num_malicious
        if n < 4 * f + 3:
            return Combined(None, [], {"error": f"bulyan needs {4 * f + 3} updates, got {n}"})
        contents = as_contents(updates)
        chosen = select_multikrum(contents, f, n - 2 * f)
        rows = sorted(next(i for i, c in enumerate(contents) if c is pick) for pick in chosen)
        selected = [[updates.deltas[i]] for i in rows]
        median = [np.median(updates.deltas[rows], axis=0)]
        delta = aggregate_n_closest_weights(median, selected, n - 4 * f)[0]
        flagged = [updates.ids[i] for i in range(n) if i not in rows]
        return Combined(delta, flagged, {"selected": [updates.ids[i] for i in rows]})
