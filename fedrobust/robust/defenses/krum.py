"""Krum and Multi-Krum (Blanchard et al. 2017, https://arxiv.org/abs/1703.02757).

The selection is Flower's own ``select_multikrum``; the selected updates are averaged
weighted by example counts, as Flower's ``MultiKrum`` strategy does.
"""

from __future__ import annotations

from flwr.serverapp.strategy.multikrum import select_multikrum

from fedrobust.robust.defenses._flower import as_contents
from fedrobust.robust.defenses.base import (
    Combined,
    Defense,
    Updates,
    register_defense,
    weighted_mean,
)


@register_defense("multikrum")
class MultiKrum(Defense):
    """Keeps the ``num_selected`` updates closest to their ``n - f - 2`` neighbours."""

    options = frozenset({"num_malicious", "num_selected"})

    def selected(self, n: int) -> int:
        """How many updates the rule keeps out of ``n``."""
        wanted = self.cfg.num_selected or n - self.num_malicious
        return max(1, min(n, wanted))

    def combine(self, updates: Updates) -> Combined:
        contents = as_contents(updates)
        chosen = select_multikrum(contents, self.num_malicious, self.selected(len(contents)))
        rows = [next(i for i, c in enumerate(contents) if c is pick) for pick in chosen]
        kept = sorted(rows)
        flagged = [updates.ids[i] for i in range(len(contents)) if i not in kept]
        delta = weighted_mean(updates.deltas[kept], updates.weights[kept])
        return Combined(delta, flagged, {"selected": [updates.ids[i] for i in kept]})


@register_defense("krum")
class Krum(MultiKrum):
    """Keeps the single update closest to its ``n - f - 2`` neighbours."""

    options = frozenset({"num_malicious"})

    def selected(self, n: int) -> int:
        return 1
