"""Unmasking a SecAgg+ round's masked sum: rebuild secrets from shares, remove masks, decode.

For every contributor ``u`` (``S3``) the server rebuilds the mask seed ``b_u`` from its
shares and removes ``PRG(b_u)``; for every ``d`` that dropped after share_keys
(``S2 \\ S3``) it rebuilds ``sk2_d``, checks it against ``pk2_d``, and removes the pairwise
masks ``d`` shares with its group members in ``S3``. What is left is the encoded sum, which
:func:`~fedrobust.secagg.encoding.decode_sum` turns back into floats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from flwr.common.secure_aggregation.crypto.shamir import combine_shares
from flwr.common.secure_aggregation.crypto.symmetric_encryption import generate_shared_key
from flwr.supercore.primitives.asymmetric import (
    bytes_to_private_key,
    bytes_to_public_key,
    public_key_to_bytes,
)
from numpy.typing import NDArray

from fedrobust.secagg.config import ErrorBounds, SecAggParams, error_bounds
from fedrobust.secagg.encoding import IntArrays, add_masks, decode_sum, masks


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


def unmask_sum(
    total: IntArrays,
    params: SecAggParams,
    contributors: Sequence[int],
    b_pool: Mapping[int, list[bytes]],
    sk2_pool: Mapping[int, list[bytes]],
    public_keys2: Mapping[int, bytes],
    share_groups: Mapping[int, list[int]],
) -> SecAggResult | SecAggFailure:
    """Remove every mask from the masked sum ``total`` (in place) and decode it.

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
    share_groups : Mapping[int, list[int]]
        Client -> its share group restricted to ``S1`` (as sent at share_keys).

    Returns
    -------
    SecAggResult | SecAggFailure
        The decoded aggregate, or why a secret could not be rebuilt.
    """
    threshold = int(params.reconstruction_threshold)
    shapes = [vector.shape for vector in total]
    for owner, shares in b_pool.items():
        try:
            seed = combine_shares(shares[:threshold])
        except ValueError:
            return SecAggFailure("aggregate", f"node {owner}'s mask seed shares do not combine")
        add_masks(total, masks(seed, params, shapes), -1, params)
    contributor_set = set(contributors)
    for owner, shares in sk2_pool.items():
        try:
            sk2 = bytes_to_private_key(combine_shares(shares[:threshold]))
        except ValueError:
            return SecAggFailure("aggregate", f"node {owner}'s sk2 shares do not combine")
        if public_key_to_bytes(sk2.public_key()) != public_keys2[owner]:
            return SecAggFailure("aggregate", f"node {owner}'s rebuilt sk2 does not match pk2")
        for partner in share_groups[owner]:
            if partner not in contributor_set:
                continue
            seed = generate_shared_key(sk2, bytes_to_public_key(public_keys2[partner]))
            # The partner added +mask when its id is the larger: take off what it added.
            sign = -1 if partner > owner else 1
            add_masks(total, masks(seed, params, shapes), sign, params)
    weighted_sum, total_weight, clipped = decode_sum(total, params, len(contributors))
    return SecAggResult(
        weighted_sum=weighted_sum,
        total_weight=total_weight,
        num_contributors=len(contributors),
        clipped=clipped,
        bounds=error_bounds(params, len(contributors), total_weight),
    )
