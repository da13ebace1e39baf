"""Coordinate-wise median (Yin et al. 2018, https://arxiv.org/abs/1803.01498).

What Flower's ``FedMedian`` computes (``np.median`` over clients per coordinate),
unweighted. A coordinate rule selects no client, so it flags none.
"""

from __future__ import annotations

import numpy as np

from fedrobust.robust.defenses.base import Combined, Defense, Updates, register_defense


@register_defense("median")
class Median(Defense):
    """The median of every coordinate over the round's updates."""

    options = frozenset(set())

    selects_clients = False

    def combine(self, updates: Updates) -> Combined:
        return Combined(np.median(updates.deltas, axis=0))
