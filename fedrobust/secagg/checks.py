"""Shape checks of what clients send the SecAgg+ server: nothing a client sends may raise."""

from __future__ import annotations

import numpy as np

from fedrobust.secagg.shamir import parse_share


def is_bytes_list(value: object, length: int | None = None) -> bool:
    """A list of ``bytes`` (of ``length`` items when given)."""
    return (
        isinstance(value, list)
        and all(isinstance(item, bytes) for item in value)
        and (length is None or len(value) == length)
    )


def is_int_list(value: object) -> bool:
    """A list of ints (no bools)."""
    return isinstance(value, list) and all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    )


def share_fits(share: object, position: int) -> bool:
    """Whether ``share`` can be the share at ``position`` (1-based, the holder's place in
    the owner's group): a well-formed :mod:`~fedrobust.secagg.shamir` share with that
    x-coordinate. Never raises."""
    parsed = parse_share(share)
    return parsed is not None and parsed[0] == position


def masked_problem(vectors: object, shapes: list[tuple[int, ...]], modulus: int) -> str | None:
    """Why ``vectors`` are not masked vectors of ``shapes`` in [0, modulus), or ``None``."""
    if not isinstance(vectors, list) or len(vectors) != len(shapes):
        return f"masked_vectors must be a list of {len(shapes)} arrays"
    for index, (vector, shape) in enumerate(zip(vectors, shapes, strict=True)):
        if not isinstance(vector, np.ndarray) or vector.shape != shape:
            return f"masked vector {index} is not an array of shape {shape}"
        if not np.issubdtype(vector.dtype, np.integer):
            return f"masked vector {index} has dtype {vector.dtype}, not an integer"
        info = np.iinfo(vector.dtype)
        if info.min >= 0 and info.max < modulus:
            continue  # e.g. uint32 with modulus 2**32: every value is in range
        if vector.size and (vector.min() < 0 or vector.max() >= modulus):
            return f"masked vector {index} leaves [0, modulus_range)"
    return None
