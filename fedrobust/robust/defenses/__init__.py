"""Aggregation rules against poisoning, one file each, in a registry.

``create_defense(cfg, num_malicious)`` builds the rule ``defense.name`` names. Rules that
Flower ships on its message API (Krum's selection, Bulyan, median, trimmed mean) are
Flower's, not rewritten. ``defense.name: fedavg`` (the default) is no rule: the server
builds no defence and the strategy's own mean aggregates. ``defense.bucketing`` wraps
any rule but FLTrust in :class:`~fedrobust.robust.defenses.bucketing.Bucketing`.
"""

from fedrobust.robust.defenses import (  # noqa: F401 - registration side effects
    bulyan,
    centered_clip,
    dnc,
    flame,
    fltrust,
    krum,
    median,
    norm_bound,
    signsgd_mv,
    trimmed_mean,
)
from fedrobust.robust.defenses.base import (
    DEFENSES,
    Combined,
    Defense,
    Updates,
    clipped_share,
    create_defense,
    register_defense,
    weighted_mean,
)

__all__ = [
    "DEFENSES",
    "Combined",
    "Defense",
    "Updates",
    "clipped_share",
    "create_defense",
    "register_defense",
    "weighted_mean",
]
