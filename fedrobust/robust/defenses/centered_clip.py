"""Centered clipping (Karimireddy, He & Jaggi 2021, https://arxiv.org/abs/2012.10333).

Starting from the last round's combined update ``v``, each iteration moves ``v`` by the
mean of the clipped differences: ``v += mean_i (x_i - v) * min(1, tau / ||x_i - v||)``.
Clients count equally (a reported example count is not trusted). ``tau`` defaults to the
median distance to the current centre. A clipping rule keeps every client, so it flags
none: it reports ``clipped_share``, the share of updates clipped in the last iteration.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedrobust.robust.defenses.base import (
    Combined,
    Defense,
    Updates,
    clipped_share,
    register_defense,
)


@register_defense("centered_clip")
class CenteredClip(Defense):
    """Iterative clipping around a centre that carries over between rounds."""

    options = frozenset({"tau", "iterations"})

    selects_clients = False

    def __init__(self, cfg: Any, num_malicious: int = 0) -> None:
        super().__init__(cfg, num_malicious)
        self.center: np.ndarray | None = None

    def combine(self, updates: Updates) -> Combined:
        x = updates.deltas
        v = np.zeros(x.shape[1]) if self.center is None else self.center.copy()
        tau = 0.0
        factors = np.ones(len(x))
        for _ in range(self.cfg.iterations):
            distances = np.linalg.norm(x - v, axis=1)
            tau = self.cfg.tau if self.cfg.tau is not None else float(np.median(distances))
            factors = np.minimum(1.0, tau / np.maximum(distances, 1e-12))
            v = v + ((x - v) * factors[:, None]).mean(axis=0)
        self.center = v
        return Combined(v, [], {"tau": tau, "clipped_share": clipped_share(factors)})

    def state_dict(self) -> dict[str, Any]:
        return {} if self.center is None else {"center": self.center.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.center = np.asarray(state["center"]) if "center" in state else None
