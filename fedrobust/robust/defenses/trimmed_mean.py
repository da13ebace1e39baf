"""Coordinate-wise trimmed mean (Yin et al. 2018, https://arxiv.org/abs/1803.01498).

Flower's ``trim_mean`` (the kernel of its ``FedTrimmedAvg``), unweighted. A coordinate
rule selects no client, so it flags none.
"""

from __future__ import annotations

from flwr.serverapp.strategy.fedtrimmedavg import trim_mean

from fedrobust.robust.defenses.base import Combined, Defense, Updates, register_defense


@register_defense("trimmed_mean")
class TrimmedMean(Defense):
    """Drops the ``beta`` share of largest and smallest values per coordinate, averages
    the rest."""

    options = frozenset({"beta"})

    selects_clients = False

    def combine(self, updates: Updates) -> Combined:
        return Combined(trim_mean(updates.deltas, self.cfg.beta))
