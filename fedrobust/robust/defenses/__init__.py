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
    zeno,
)
from fedrobust.robust.defenses.base import (
    DEFENSES,
    Combined,
    Defense,
    DefenseOptions,
    Updates,
    clipped_share,
    register_defense,
    weighted_mean,
)
from fedrobust.robust.defenses.bucketing import Bucketing

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


def create_defense(cfg: DefenseOptions, num_malicious: int = 0, seed: int = 0) -> Defense:
    """The defence ``cfg.name`` names, behind ``defense.bucketing`` when set; an unknown
    name lists the known ones."""
    rule = DEFENSES.get(cfg.name)(cfg, num_malicious, seed)
    bucket_size = cfg.bucketing
    if bucket_size is None:
        return rule
    return Bucketing(rule, bucket_size)
