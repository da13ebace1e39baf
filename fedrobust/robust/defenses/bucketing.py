"""Bucketing (Karimireddy, He & Jaggi 2022, https://arxiv.org/abs/2006.09365).

Before the rule runs, the round's ``n`` updates are randomly permuted and averaged in
buckets of ``s`` (``defense.bucketing``; the last bucket may be smaller), and the rule
combines the ``ceil(n / s)`` bucket means. Averaging shrinks the spread of the honest
updates that non-IID clients cause, which is what breaks median, trimmed mean and Krum
there; the price is that one attacker spoils a whole bucket.

The rule's ``f`` (``num_malicious``) stays a *count*: ``f`` attackers spoil at most ``f``
buckets, so the share of spoiled inputs grows from ``f / n`` to at most
``f / ceil(n / s)``, about ``s`` times the attackers' share, as the paper's analysis
has it (its condition ``s * delta <= delta_max`` of the rule). The scenario's checks on
``f`` (Krum's ``2f + 3``, trimmed mean's cut per side) run against the bucket count.

The permutation is protecting randomness: it comes from the secret source, or under
``defense.reproducible`` from the seed (:meth:`Defense.rng`). The rule's figures name
clients, not buckets: a flagged bucket flags every client in it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedrobust.robust.defenses.base import Combined, Defense, Updates


def bucket_means(updates: Updates, order: np.ndarray, size: int) -> tuple[Updates, list[list[int]]]:
    """The updates permuted by ``order`` and averaged in buckets of ``size``.

    Parameters
    ----------
    updates : Updates
        The round's client updates.
    order : np.ndarray
        A permutation of ``range(n)``.
    size : int
        Updates per bucket (the last bucket holds the rest).

    Returns
    -------
    tuple[Updates, list[list[int]]]
        One row per bucket (the plain mean of its updates, the sum of their example
        counts, ids ``0..m-1``) and each bucket's member partition ids.
    """
    groups = [order[i : i + size] for i in range(0, len(order), size)]
    deltas = np.stack([updates.deltas[g].mean(axis=0) for g in groups])
    weights = np.array([updates.weights[g].sum() for g in groups])
    members = [[updates.ids[i] for i in g] for g in groups]
    buckets = Updates(list(range(len(groups))), deltas, weights, updates.reference, updates.probe)
    return buckets, members


class Bucketing(Defense):
    """``rule`` run on random bucket means of ``size`` updates."""

    draw_tag = 1

    def __init__(self, rule: Defense, size: int) -> None:
        super().__init__(rule.cfg, rule.num_malicious, rule.seed)
        self.rule = rule
        self.size = size
        self.selects_clients = rule.selects_clients
        self.needs_reference = rule.needs_reference
        self.needs_probe = rule.needs_probe

    def combine(self, updates: Updates) -> Combined:
        order = self.rng().permutation(len(updates.ids))
        buckets, members = bucket_means(updates, order, self.size)
        out = self.rule.combine(buckets)
        flagged = sorted(pid for b in out.flagged for pid in members[b])
        detail = {**out.detail, "buckets": len(members)}
        if "selected" in detail:
            detail["selected"] = sorted(pid for b in detail["selected"] for pid in members[b])
        return Combined(out.delta, flagged, detail)

    def state_dict(self) -> dict[str, Any]:
        return {**self.rule.state_dict(), "bucket_draws": self.draws}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        inner = {k: v for k, v in state.items() if k != "bucket_draws"}
        self.rule.load_state_dict(inner)
        self.draws = int(state.get("bucket_draws", 0))
