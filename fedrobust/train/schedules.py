"""Learning-rate schedules across federated rounds.

A pure function of (schedule, base lr, round, total rounds): every client computes the
same rate for a round, and the server records it, without sending extra state.
"""

from __future__ import annotations

import math

from fedrobust.train.config import LrScheduleConfig


def round_lr(cfg: LrScheduleConfig, base_lr: float, rnd: int, total_rounds: int) -> float:
    """The learning rate of round ``rnd`` (1-based) out of ``total_rounds``."""
    if cfg.name == "constant":
        return base_lr
    if cfg.name == "step":
        return base_lr * cfg.gamma ** ((rnd - 1) // cfg.step_rounds)
    if cfg.name == "warmup_cosine" and rnd <= cfg.warmup_rounds:
        return base_lr * rnd / cfg.warmup_rounds
    offset = cfg.warmup_rounds if cfg.name == "warmup_cosine" else 0
    span = max(total_rounds - offset - 1, 1)
    progress = min(max(rnd - offset - 1, 0) / span, 1.0)
    return cfg.min_lr + (base_lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
