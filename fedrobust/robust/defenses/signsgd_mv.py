"""signSGD with majority vote (Bernstein et al., ICLR 2019, https://arxiv.org/abs/1810.05291).

Each client's update is reduced to its signs; the server takes the per-coordinate
majority vote and steps ``defense.server_lr`` in that direction:
``delta = server_lr * sign(sum_i sign(x_i))`` (a tie gives 0). Clients count equally.
It fits the update interface as the paper's vote over *updates* (a client's whole local
round, not one stochastic gradient): the clients still send full-precision updates, so
nothing of signSGD's compression is gained, only its vote. Every coordinate moves by at
most ``server_lr`` per round, so ``server_lr`` plays the learning rate's part and must be
tuned to the model (the clients' own ``lr`` does not reach the aggregate). The vote
tolerates a minority of attackers (``f < n / 2``); it selects no client, so it flags none.
"""

from __future__ import annotations

import numpy as np

from fedrobust.robust.defenses.base import Combined, Defense, Updates, register_defense


@register_defense("signsgd_mv")
class SignSGDMajorityVote(Defense):
    """``server_lr * sign(sum_i sign(x_i))``."""

    options = frozenset({"server_lr"})

    selects_clients = False

    def combine(self, updates: Updates) -> Combined:
        votes = np.sign(updates.deltas).sum(axis=0)
        return Combined(self.cfg.server_lr * np.sign(votes))
