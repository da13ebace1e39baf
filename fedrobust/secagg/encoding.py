"""Integer encoding of a weighted update, its decoding after summation, and the masks.

See :mod:`fedrobust.secagg.config` for the encoding and :func:`~.config.error_bounds` for its
error. Everything is vectorised: one numpy pass per array, one PRG call per seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from flwr.common.secure_aggregation.quantization import dequantize, quantize
from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen
from numpy.typing import NDArray

from fedrobust.secagg.config import SecAggParams

IntArrays = list[NDArray[np.int64]]
FloatArrays = list[NDArray[np.float64]]
Shape = tuple[int, ...]

#: The two one-element vectors appended to the update: quantised weight, clipped count.
EXTRA_SHAPES: list[Shape] = [(1,), (1,)]


def quantize_weight(weight: float, params: SecAggParams) -> int:
    """Return the client's quantised weight ``round(weight / max_weight * Q)``.

    Parameters
    ----------
    weight : float
        The client's weight, in ``[0, max_weight]``.
    params : SecAggParams
        Resolved parameters.

    Returns
    -------
    int
        ``w_q`` in ``[0, quantization_range]``; the effective weight is
        ``max_weight * w_q / quantization_range``.

    Raises
    ------
    ValueError
        When the weight is negative, not finite or above ``max_weight``.
    """
    if not np.isfinite(weight) or weight < 0:
        raise ValueError(f"weight: must be a finite number >= 0, got {weight}")
    if weight > params.max_weight:
        raise ValueError(f"weight: {weight} exceeds max_weight={params.max_weight}")
    return int(round(weight / params.max_weight * params.quantization_range))


def encode_update(
    update: Sequence[NDArray[np.floating]], weight: float, params: SecAggParams
) -> tuple[IntArrays, int]:
    """Clip, weight and quantise an update; append the quantised weight and the clipped count.

    Parameters
    ----------
    update : Sequence[NDArray[np.floating]]
        The client's float arrays (finite).
    weight : float
        The client's weight, in ``[0, max_weight]``.
    params : SecAggParams
        Resolved parameters.

    Returns
    -------
    tuple[list[NDArray[np.int64]], int]
        ``[q_1, ..., q_k, [w_q], [n_clipped]]`` with every ``q_i`` in ``[0, quantization_range]``
        and the update's shapes, and ``n_clipped`` (values with ``|x| > clipping_range``).
    """
    c = params.clipping_range
    arrays = [np.asarray(array, dtype=np.float64) for array in update]
    for index, array in enumerate(arrays):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"update: array {index} holds a NaN or an infinity")
    clipped = sum(int(np.count_nonzero(np.abs(array) > c)) for array in arrays)
    weight_q = quantize_weight(weight, params)
    ratio = weight_q / params.quantization_range
    scaled = [np.clip(array, -c, c) * ratio for array in arrays]
    quantized = quantize(scaled, c, params.quantization_range)
    # quantize may land one step above the range when (2c) * (Q / 2c) rounds up: clamp.
    encoded: IntArrays = [
        np.array(np.clip(q, 0, params.quantization_range), dtype=np.int64) for q in quantized
    ]
    encoded.append(np.array([weight_q], dtype=np.int64))
    encoded.append(np.array([clipped], dtype=np.int64))
    return encoded, clipped


def decode_sum(
    summed: IntArrays, params: SecAggParams, num_contributors: int
) -> tuple[FloatArrays, float, int]:
    """Decode the unmasked sum of ``num_contributors`` encoded updates.

    Each client's ``q = (r x + c) Q / (2c)`` up to rounding, so
    ``sum q * 2c / Q - n c = sum r x`` and ``sum w_hat x = max_weight * sum r x``.

    Parameters
    ----------
    summed : list[NDArray[np.int64]]
        Sum (mod ``modulus_range``, which it does not reach) of the encoded updates.
    params : SecAggParams
        Resolved parameters.
    num_contributors : int
        Number of encoded updates in the sum (each carries the offset ``c``).

    Returns
    -------
    tuple[list[NDArray[np.float64]], float, int]
        ``sum_u w_hat_u clip(x_u)`` per array, ``sum_u w_hat_u``, and the total clipped count.
    """
    *vectors, weight_vector, clipped_vector = summed
    c = params.clipping_range
    # flwr's dequantize removes one offset c; the other n - 1 are removed here.
    ratio_sums = dequantize(vectors, c, params.quantization_range)
    weighted_sum = [
        (array - (num_contributors - 1) * c) * params.max_weight for array in ratio_sums
    ]
    total_weight = params.max_weight * int(weight_vector[0]) / params.quantization_range
    return weighted_sum, total_weight, int(clipped_vector[0])


def masks(seed: bytes, params: SecAggParams, shapes: Sequence[Shape]) -> IntArrays:
    """Return the PRG expansion of ``seed`` into one integer array per shape.

    Parameters
    ----------
    seed : bytes
        A private-mask seed or an ECDH-derived shared key (length a multiple of 4).
    params : SecAggParams
        Resolved parameters (values in ``[0, modulus_range)``).
    shapes : Sequence[tuple[int, ...]]
        The array shapes.

    Returns
    -------
    list[NDArray[np.int64]]
        The masks, generated in one ``pseudo_rand_gen`` call.
    """
    return pseudo_rand_gen(seed, params.modulus_range, list(shapes))


def add_masks(
    accumulator: IntArrays, mask_arrays: IntArrays, sign: int, params: SecAggParams
) -> None:
    """Add (``sign=1``) or subtract (``sign=-1``) masks in place, modulo ``modulus_range``.

    Parameters
    ----------
    accumulator : list[NDArray[np.int64]]
        Values in ``[0, modulus_range)``; updated in place.
    mask_arrays : list[NDArray[np.int64]]
        Values in ``[0, modulus_range)``.
    sign : int
        ``1`` or ``-1``.
    params : SecAggParams
        Resolved parameters (``modulus_range`` a power of two at most ``2**62``, so neither the
        sum nor the difference overflows int64 and ``& (m - 1)`` is the modulo).
    """
    low_bits = params.modulus_range - 1
    for acc, mask in zip(accumulator, mask_arrays, strict=True):
        if sign > 0:
            np.add(acc, mask, out=acc)
        else:
            np.subtract(acc, mask, out=acc)
        np.bitwise_and(acc, low_bits, out=acc)
