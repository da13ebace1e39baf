"""The SecAgg+ neighbour graph: which clients hold shares of (and mask with) which."""

from __future__ import annotations

import random
from collections.abc import Sequence


def share_groups(
    node_ids: Sequence[int], num_shares: int, rng: random.Random | None = None
) -> dict[int, list[int]]:
    """Return every client's share group: itself and its ``num_shares - 1`` neighbours.

    The graph is a ring (a circulant ``(num_shares - 1)``-regular Harary graph) over a random
    permutation of the node ids: a client's neighbours are the ``(num_shares - 1) / 2`` clients on
    each side of it. A random order, as in Bell et al. (2020), keeps the server from placing
    chosen clients around a victim when the ids are predictable. The graph is symmetric: ``v`` is
    in ``u``'s group exactly when ``u`` is in ``v``'s. ``num_shares`` equal to the number of
    clients gives the complete graph (plain SecAgg); otherwise it must be odd, because a ring
    with an even number of neighbours per client does not exist. (Flower's workflow sends an
    even ``num_shares`` below the cohort size to the clients unchanged, then builds groups of
    ``num_shares + 1``: every client creates one share too few, fails, and the round ends with
    an unrelated "insufficient available nodes" error.)

    Parameters
    ----------
    node_ids : Sequence[int]
        The sampled clients (distinct).
    num_shares : int
        Group size, as resolved by :func:`~.config.resolve_params`.
    rng : random.Random, optional
        Source of the permutation; ``random.SystemRandom()`` when omitted.

    Returns
    -------
    dict[int, list[int]]
        Node id -> sorted ids of its group (itself included).
    """
    order = sorted(node_ids)
    num_clients = len(order)
    if len(set(order)) != num_clients:
        raise ValueError("node_ids: must be distinct")
    if not 1 <= num_shares <= num_clients:
        raise ValueError(f"num_shares: must be in [1, {num_clients}], got {num_shares}")
    if num_shares == num_clients:
        return {nid: list(order) for nid in order}
    if num_shares % 2 == 0:
        raise ValueError(f"num_shares: must be odd below {num_clients} clients, got {num_shares}")
    (rng or random.SystemRandom()).shuffle(order)
    half = (num_shares - 1) // 2
    return {
        nid: sorted(order[(index + offset) % num_clients] for offset in range(-half, half + 1))
        for index, nid in enumerate(order)
    }
