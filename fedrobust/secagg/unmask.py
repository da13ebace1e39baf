"""Unmasking a SecAgg+ round's masked sum: rebuild secrets from shares, remove masks, decode.

For every contributor ``u`` (``S3``) the server rebuilds the mask seed ``b_u`` from its
shares, checks it against the commitment ``u`` published at setup, and removes ``PRG(b_u)``;
for every ``d`` that dropped after share_keys (``S2 \\ S3``) it rebuilds ``sk2_d``, checks it
against ``pk2_d``, and removes the pairwise masks ``d`` shares with its partners in ``S3``.
A secret that fails its check (a corrupted share) is rebuilt from another subset of
``reconstruction_threshold`` shares (:func:`reconstruct`). What is left is the encoded sum;
it must pass :func:`~fedrobust.secagg.encoding.sum_range_problem` before
:func:`~fedrobust.secagg.encoding.decode_sum` turns it back into floats.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fedrobust.secagg.config import ErrorBounds, SecAggParams, error_bounds
from fedrobust.secagg.encoding import (
    IntArrays,
    add_masks,
    decode_sum,
    masks,
    seed_commitment,
    sum_range_problem,
)
from fedrobust.secagg.keys import (
    MASK_PURPOSE,
    agree,
    load_peer_key,
    load_private_key,
    public_key_of,
)
from fedrobust.secagg.shamir import combine_shares

#: Most share subsets tried per secret before the round fails.
MAX_SUBSETS = 64


@dataclass(frozen=True)
class SecAggFailure:
    """Why a SecAgg+ round produced no aggregate.

    Parameters
    ----------
    stage : str
        The stage at which it failed (a :class:`~.config.Stage` value, or ``"aggregate"``).
    reason : str
        What went wrong, with the counts.
    """

    stage: str
    reason: str


@dataclass(frozen=True)
class SecAggResult:
    """The unmasked, decoded aggregate of a SecAgg+ round.

    Parameters
    ----------
    weighted_sum : list[NDArray[np.float64]]
        ``sum_u w_hat_u * clip(x_u)`` over the contributing clients, one array per update array.
    total_weight : float
        ``sum_u w_hat_u`` (effective weights, see :mod:`~.config`).
    num_contributors : int
        Clients whose masked vectors are in the sum (``S3``).
    clipped : int
        Values clipped by the contributing clients, in total.
    bounds : ErrorBounds
        Per-coordinate error bounds of the above (:func:`~.config.error_bounds`).
    """

    weighted_sum: list[NDArray[np.float64]]
    total_weight: float
    num_contributors: int
    clipped: int
    bounds: ErrorBounds

    def weighted_mean(self) -> list[NDArray[np.float64]] | SecAggFailure:
        """Return ``weighted_sum / total_weight``, or a failure when the total weight is 0.

        Returns
        -------
        list[NDArray[np.float64]] | SecAggFailure
            The weighted mean per array.
        """
        if self.total_weight <= 0:
            return SecAggFailure("aggregate", "total weight of the contributing clients is 0")
        return [array / self.total_weight for array in self.weighted_sum]


def _subsets(num_shares: int, threshold: int) -> Iterator[tuple[int, ...]]:
    """Subsets of ``threshold`` share positions to try, at most :data:`MAX_SUBSETS`.

    First the cyclic windows ``i, i + 1, ..., i + t - 1`` (each leaves out a different run of
    ``k - t`` shares, so one bad share is avoided by ``k - t`` of them), then seeded random
    subsets; no subset twice.
    """
    if num_shares <= threshold:
        yield tuple(range(num_shares))
        return
    seen: set[tuple[int, ...]] = set()
    windows = (
        tuple(sorted((start + offset) % num_shares for offset in range(threshold)))
        for start in range(num_shares)
    )
    rng = random.Random(num_shares * 100_003 + threshold)
    samples = (
        tuple(sorted(rng.sample(range(num_shares), threshold))) for _ in range(4 * MAX_SUBSETS)
    )
    for subset in itertools.chain(windows, samples):
        if subset in seen:
            continue
        seen.add(subset)
        yield subset
        if len(seen) >= MAX_SUBSETS:
            return


def reconstruct(
    shares: Sequence[bytes], threshold: int, is_valid: Callable[[bytes], bool]
) -> tuple[bytes | None, int]:
    """Rebuild a Shamir-shared secret that passes ``is_valid``, retrying other share subsets.

    A subset of ``threshold`` sound shares rebuilds the secret; one corrupted share in it
    rebuilds some other value, which ``is_valid`` (the published public key or commitment)
    rejects; then the next subset is tried.

    Parameters
    ----------
    shares : Sequence[bytes]
        The shares that came back (at least ``threshold``).
    threshold : int
        Shares needed to rebuild the secret.
    is_valid : Callable[[bytes], bool]
        Whether a rebuilt value is the secret.

    Returns
    -------
    tuple[bytes | None, int]
        The secret (``None`` when no subset tried rebuilt a valid one) and the subsets tried.
    """
    tried = 0
    for subset in _subsets(len(shares), threshold):
        tried += 1
        try:
            secret = combine_shares([shares[i] for i in subset])
        except (ValueError, TypeError, IndexError):
            continue
        if is_valid(secret):
            return secret, tried
    return None, tried


def _matches_public_key(secret: bytes, public_key: bytes) -> bool:
    return public_key_of(secret) == public_key


def unmask_sum(
    total: IntArrays,
    params: SecAggParams,
    contributors: Sequence[int],
    b_pool: Mapping[int, list[bytes]],
    sk2_pool: Mapping[int, list[bytes]],
    public_keys2: Mapping[int, bytes],
    commitments: Mapping[int, bytes],
    partners: Mapping[int, Sequence[int]],
) -> SecAggResult | SecAggFailure:
    """Remove every mask from the masked sum ``total`` (in place), check its range and decode it.

    Parameters
    ----------
    total : list[NDArray[np.int64]]
        The sum of the contributors' masked vectors; unmasked in place.
    params : SecAggParams
        The round's resolved parameters.
    contributors : Sequence[int]
        Clients whose masked vectors are in ``total`` (``S3``).
    b_pool : Mapping[int, list[bytes]]
        Contributor -> the shares of its mask seed ``b`` that came back.
    sk2_pool : Mapping[int, list[bytes]]
        Client dropped after share_keys -> the shares of its masking key ``sk2``.
    public_keys2 : Mapping[int, bytes]
        Client -> its public masking key ``pk2`` (as sent at setup).
    commitments : Mapping[int, bytes]
        Client -> the commitment to its mask seed (as sent at setup).
    partners : Mapping[int, Sequence[int]]
        Client -> the clients it exchanged shares with, so masked with (``S2`` members).

    Returns
    -------
    SecAggResult | SecAggFailure
        The decoded aggregate, or why there is none (a secret no subset of its shares
        rebuilds, or a sum out of range).
    """
    threshold = int(params.reconstruction_threshold)
    shapes = [vector.shape for vector in total]
    for owner, shares in b_pool.items():
        committed = commitments[owner]
        seed, tried = reconstruct(shares, threshold, lambda s, c=committed: seed_commitment(s) == c)
        if seed is None:
            return SecAggFailure(
                "aggregate",
                f"node {owner}'s mask seed b: none of {tried} subsets of {threshold} of its "
                f"{len(shares)} shares rebuilds the seed it committed to (corrupted shares)",
            )
        add_masks(total, masks(seed, params, shapes), -1, params)
    contributor_set = set(contributors)
    for owner, shares in sk2_pool.items():
        pk2 = public_keys2[owner]
        secret, tried = reconstruct(shares, threshold, lambda s, k=pk2: _matches_public_key(s, k))
        if secret is None:
            return SecAggFailure(
                "aggregate",
                f"node {owner}'s masking key sk2: none of {tried} subsets of {threshold} of its "
                f"{len(shares)} shares rebuilds a key matching its pk2 (corrupted shares)",
            )
        sk2 = load_private_key(secret)
        for partner in partners[owner]:
            if partner not in contributor_set:
                continue
            peer = load_peer_key(public_keys2[partner])
            seed = None if peer is None else agree(sk2, peer, MASK_PURPOSE)
            if seed is None:  # checked at setup, and the partner masked with it: unreachable
                return SecAggFailure("aggregate", f"node {partner}'s pk2 is unusable")
            # The partner added +mask when its id is the larger: take off what it added.
            sign = -1 if partner > owner else 1
            add_masks(total, masks(seed, params, shapes), sign, params)
    total = [vector.astype(np.int64) for vector in total]  # exact: every value < 2**62
    problem = sum_range_problem(total, params, len(contributors))
    if problem is not None:
        return SecAggFailure("aggregate", problem)
    weighted_sum, total_weight, clipped = decode_sum(total, params, len(contributors))
    return SecAggResult(
        weighted_sum=weighted_sum,
        total_weight=total_weight,
        num_contributors=len(contributors),
        clipped=clipped,
        bounds=error_bounds(params, len(contributors), total_weight),
    )
