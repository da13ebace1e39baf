"""No defence: the weighted mean of every update (McMahan et al. 2017)."""

from __future__ import annotations

from fedrobust.robust.defenses.base import (
    Combined,
    Defense,
    Updates,
    register_defense,
    weighted_mean,
)


@register_defense("fedavg")
class FedAvgDefense(Defense):
    """Weighted mean by example counts; flags no one."""

    def combine(self, updates: Updates) -> Combined:
        return Combined(weighted_mean(updates.deltas, updates.weights))
