"""Integer encoding of a weighted update, its decoding after summation, and the masks.

See :mod:`fedrobust.secagg.config` for the encoding and :func:`~.config.error_bounds` for its
error. Everything is vectorised: one numpy pass per array, one PRG call per seed.

The masks come from AES-256 in counter mode (``cryptography``, a stream cipher used as a PRG):
the whole seed (32 bytes of ``os.urandom`` for a self mask, the 32-byte HKDF output of an X25519
agreement for a pairwise mask), hashed with SHA-256, keys the stream, so guessing a mask means
guessing 256 bits.
Flower's ``pseudo_rand_gen`` is not used: it folds the seed into a 32-bit Mersenne-Twister seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flwr.common.secure_aggregation.quantization import dequantize
from numpy.typing import NDArray

from fedrobust.secagg.config import SecAggParams

IntArrays = list[NDArray[np.int64]]
FloatArrays = list[NDArray[np.float64]]
Shape = tuple[int, ...]

#: The two one-element vectors appended to the update: quantised weight, clipped count.
EXTRA_SHAPES: list[Shape] = [(1,), (1,)]
#: Domain-separation prefix of the mask stream (a different use of a seed gets another).
MASK_DOMAIN = b"fedrobust-secagg-mask-v2:"
#: Domain-separation prefix of the commitment to a client's mask seed.
COMMIT_DOMAIN = b"fedrobust-secagg-seed-commitment-v1:"


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
    q = params.quantization_range
    step = q / (2 * c)
    rng = np.random.default_rng()  # rounding noise: fresh entropy, unbiased rounding
    encoded: IntArrays = []
    for array in arrays:
        # q = (r clip(x) + c) Q / (2c), rounded up with probability its fraction (unbiased:
        # E[q] is the exact value), then clamped (float error may land one step out)
        exact = np.array(array, dtype=np.float64)  # a copy, also of a 0-d array
        np.clip(exact, -c, c, out=exact)
        exact *= ratio * step
        exact += c * step + rng.random(exact.shape)
        np.floor(exact, out=exact)
        encoded.append(np.clip(exact, 0, q, out=exact).astype(np.int64))
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


def seed_commitment(seed: bytes) -> bytes:
    """Return the commitment a client publishes to its mask seed ``b`` at setup.

    ``SHA-256(COMMIT_DOMAIN + b)``: ``b`` is 32 uniform bytes, so the digest reveals nothing a
    search could use, and it lets the server tell a seed rebuilt from sound shares from one a
    corrupted share bent (as ``pk2`` does for ``sk2``).

    Parameters
    ----------
    seed : bytes
        The mask seed.

    Returns
    -------
    bytes
        The 32-byte digest.
    """
    return hashlib.sha256(COMMIT_DOMAIN + bytes(seed)).digest()


def sum_range_problem(summed: IntArrays, params: SecAggParams, num_contributors: int) -> str | None:
    """Say why an unmasked sum cannot come from ``num_contributors`` honest encodings, if so.

    An honest client's ``q`` lies within one rounding step of
    ``[(Q - w_q) / 2, (Q + w_q) / 2]`` (its update, clipped to ``[-c, c]`` and scaled by
    ``r = w_q / Q``), its ``w_q`` in ``[0, Q]``, its clip count in ``[0, num_values]``. So with
    ``n`` contributors and ``W_q = sum w_q``: ``0 <= W_q <= n Q``, ``0 <= clipped <= n
    num_values``, and every summed coordinate satisfies ``|2 sum q - n Q| <= W_q + 4 n``, i.e.
    the decoded weighted mean stays within ``clipping_range`` (plus rounding). A client that
    masked values outside its range (a shifted sum, or values that wrapped the modulus) breaks
    one of these unless what it added is as small as an honest client's own range allows.
    Exact integer arithmetic: every value is below ``modulus_range <= 2**62``.

    Parameters
    ----------
    summed : list[NDArray[np.int64]]
        The unmasked sum (update arrays, then ``[W_q]`` and ``[clipped]``), in
        ``[0, modulus_range)``.
    params : SecAggParams
        Resolved parameters.
    num_contributors : int
        Number of encoded updates in the sum.

    Returns
    -------
    str | None
        The first broken bound, or ``None`` when the sum is in range.
    """
    *vectors, weight_vector, clipped_vector = summed
    n = int(num_contributors)
    q = int(params.quantization_range)
    num_values = sum(int(vector.size) for vector in vectors)
    weight_q = int(weight_vector[0])
    if not 0 <= weight_q <= n * q:
        return (
            f"range check: the summed quantised weight {weight_q} is outside [0, {n * q}] "
            f"({n} contributors x quantization_range)"
        )
    clipped = int(clipped_vector[0])
    if not 0 <= clipped <= n * num_values:
        return (
            f"range check: the summed clip count {clipped} is outside [0, {n * num_values}] "
            f"({n} contributors x {num_values} values)"
        )
    limit = weight_q + 4 * n
    for index, vector in enumerate(vectors):
        if vector.size == 0:
            continue
        spread = np.abs(2 * vector - n * q)
        worst = int(spread.max())
        if worst > limit:
            position = int(spread.argmax())
            return (
                f"range check: value {position} of array {index} decodes to a weighted sum "
                f"beyond total_weight x clipping_range (|2 sum q - n Q| = {worst} > {limit}): "
                "a contribution left its clipping range"
            )
    return None


def wire_dtype(modulus_range: int) -> np.dtype:
    """The unsigned integer type masked values live in: 32 bits when ``modulus_range <= 2**32``,
    else 64. Its wrap-around (modulo ``2**32`` or ``2**64``, multiples of the power-of-two
    modulus) keeps every sum right modulo ``modulus_range``."""
    return np.dtype(np.uint32) if modulus_range <= 2**32 else np.dtype(np.uint64)


def _keystream_words(seed: bytes, num_values: int, dtype: np.dtype) -> NDArray[np.unsignedinteger]:
    """``num_values`` little-endian words of ``dtype`` from the seed's AES-256-CTR keystream."""
    key = hashlib.sha256(MASK_DOMAIN + bytes(seed)).digest()
    keystream = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    stream = keystream.update(bytes(dtype.itemsize * num_values))
    return np.frombuffer(stream, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False)


def prg(seed: bytes, num_values: int, modulus_range: int) -> NDArray[np.int64]:
    """Expand ``seed`` into ``num_values`` uniform integers in ``[0, modulus_range)``.

    The AES-256-CTR keystream under the key ``SHA-256(MASK_DOMAIN + seed)`` (counter from 0;
    each seed is fresh per round, so no key meets a counter twice) is read as little-endian
    unsigned integers (4 bytes each when ``modulus_range <= 2**32``, else 8) whose low bits
    are kept. ``modulus_range`` is a power of two, so the low bits of a uniform integer are
    uniform: no rejection is needed.

    Parameters
    ----------
    seed : bytes
        The secret seed (at least 16 bytes); every byte of it changes the whole output.
    num_values : int
        How many integers.
    modulus_range : int
        A power of two in ``[2, 2**62]``.

    Returns
    -------
    NDArray[np.int64]
        The integers, one flat array.
    """
    if len(seed) < 16:
        raise ValueError(f"seed: need at least 16 bytes, got {len(seed)}")
    if modulus_range < 2 or modulus_range & (modulus_range - 1) or modulus_range > 2**62:
        raise ValueError(f"modulus_range: must be a power of two <= 2**62, got {modulus_range}")
    words = _keystream_words(seed, num_values, wire_dtype(modulus_range))
    return (words & words.dtype.type(modulus_range - 1)).astype(np.int64)


def masks(seed: bytes, params: SecAggParams, shapes: Sequence[Shape]) -> IntArrays:
    """Return the PRG expansion of ``seed`` into one array per shape (:func:`prg`'s values).

    Parameters
    ----------
    seed : bytes
        A private-mask seed or an X25519-derived shared key (at least 16 bytes).
    params : SecAggParams
        Resolved parameters (values in ``[0, modulus_range)``).
    shapes : Sequence[tuple[int, ...]]
        The array shapes.

    Returns
    -------
    list[NDArray]
        The masks in :func:`wire_dtype`, cut from one stream in the order of ``shapes``.
    """
    if len(seed) < 16:
        raise ValueError(f"seed: need at least 16 bytes, got {len(seed)}")
    modulus = int(params.modulus_range)
    sizes = [int(np.prod(shape)) for shape in shapes]
    flat = _keystream_words(seed, sum(sizes), wire_dtype(modulus))
    if modulus < 2 ** (8 * flat.dtype.itemsize):
        flat = flat & flat.dtype.type(modulus - 1)
    out: IntArrays = []
    start = 0
    for shape, size in zip(shapes, sizes, strict=True):
        out.append(flat[start : start + size].reshape(shape))
        start += size
    return out


def to_wire(arrays: Sequence[NDArray[np.integer]], params: SecAggParams) -> IntArrays:
    """Copies of ``arrays`` (values in ``[0, modulus_range)``) in :func:`wire_dtype`, ready
    for :func:`add_masks`."""
    dtype = wire_dtype(int(params.modulus_range))
    return [np.asarray(array).astype(dtype) for array in arrays]


def add_masks(
    accumulator: IntArrays, mask_arrays: IntArrays, sign: int, params: SecAggParams
) -> None:
    """Add (``sign=1``) or subtract (``sign=-1``) masks in place, modulo ``modulus_range``.

    Parameters
    ----------
    accumulator : list[NDArray]
        Values in ``[0, modulus_range)``, in :func:`wire_dtype` (:func:`to_wire`); updated in
        place.
    mask_arrays : list[NDArray]
        Values in ``[0, modulus_range)``.
    sign : int
        ``1`` or ``-1``.
    params : SecAggParams
        Resolved parameters (``modulus_range`` a power of two at most ``2**62``: the unsigned
        type's wrap-around is a multiple of it, and ``& (m - 1)`` is the modulo).
    """
    modulus = int(params.modulus_range)
    for acc, mask in zip(accumulator, mask_arrays, strict=True):
        if sign > 0:
            np.add(acc, mask, out=acc, casting="unsafe")
        else:
            np.subtract(acc, mask, out=acc, casting="unsafe")
        if modulus < 2 ** (8 * acc.dtype.itemsize):
            np.bitwise_and(acc, acc.dtype.type(modulus - 1), out=acc)
