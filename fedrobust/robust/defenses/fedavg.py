"""No defence: the weighted mean of every update (McMahan et al. 2017).

Registered so that ``defense.name: fedavg`` validates against the registry like every
other rule; the server builds no defence for it and aggregates with the strategy's own
mean, so :meth:`FedAvgDefense.combine` serves direct callers (and the tests) only.
"""

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
