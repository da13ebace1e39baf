"""Centered clipping (Karimireddy, He & Jaggi 2021, https://arxiv.org/abs/2012.10333).

Starting from the last round's combined update ``v`` (the previous aggregate is the
centre, as in the paper, and it is checkpointed), each iteration moves ``v`` by the mean
of the clipped differences: ``v += mean_i (x_i - v) * min(1, tau / ||x_i - v||)``.
Clients count equally (a reported example count is not trusted).

The radius ``tau`` follows ``defense.tau_schedule``:

- ``median`` (default): the median distance to the current centre, each iteration;
- ``fixed``: ``defense.tau`` in every iteration;
- ``theory``: the paper's schedule (its Theorem on CC), ``tau_l = 4 rho_l
  sqrt((1 - delta) / (3 delta))`` with ``delta = f / n`` the attackers' share and
  ``rho_l`` the distance of the centre to the honest mean at iteration ``l``. The server
  cannot know ``rho_l``; we estimate it robustly by the median distance of the updates to
  the current centre (it shrinks as the centre converges, as the paper's ``rho_l`` does).
  With ``f = 0`` the radius is infinite and the rule is the mean.

A clipping rule keeps every client, so it flags none: it reports ``clipped_share``, the
share of updates clipped in the last iteration.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fedrobust.robust.defenses.base import (
    Combined,
    Defense,
    Updates,
    clipped_share,
    register_defense,
)


def theory_tau(rho: float, f: int, n: int) -> float:
    """The paper's radius ``4 rho sqrt((1 - delta) / (3 delta))`` for ``delta = f / n``
    (infinite without attackers)."""
    if f <= 0:
        return math.inf
    delta = min(f / n, 0.5)
    return 4.0 * rho * math.sqrt((1.0 - delta) / (3.0 * delta))


@register_defense("centered_clip")
class CenteredClip(Defense):
    """Iterative clipping around a centre that carries over between rounds."""

    options = frozenset({"tau", "iterations", "tau_schedule", "num_malicious"})

    selects_clients = False

    def __init__(self, cfg: Any, num_malicious: int = 0, seed: int = 0) -> None:
        super().__init__(cfg, num_malicious, seed)
        self.center: np.ndarray | None = None

    def radius(self, distances: np.ndarray) -> float:
        """This iteration's ``tau`` under ``defense.tau_schedule``."""
        schedule = self.cfg.tau_schedule
        if schedule == "fixed" or (schedule == "median" and self.cfg.tau is not None):
            return float(self.cfg.tau)
        rho = float(np.median(distances))
        if schedule == "theory":
            return theory_tau(rho, self.num_malicious, len(distances))
        return rho

    def combine(self, updates: Updates) -> Combined:
        x = updates.deltas
        v = np.zeros(x.shape[1]) if self.center is None else self.center.copy()
        tau = 0.0
        factors = np.ones(len(x))
        for _ in range(self.cfg.iterations):
            distances = np.linalg.norm(x - v, axis=1)
            tau = self.radius(distances)
            factors = np.minimum(1.0, tau / np.maximum(distances, 1e-12))
            v = v + ((x - v) * factors[:, None]).mean(axis=0)
        self.center = v
        shown = tau if math.isfinite(tau) else None  # metrics.json has no infinity
        return Combined(v, [], {"tau": shown, "clipped_share": clipped_share(factors)})

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        return state if self.center is None else {**state, "center": self.center.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.center = np.asarray(state["center"]) if "center" in state else None
