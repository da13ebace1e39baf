"""Client updates as flat vectors: what the defences and the colluding attacker work on.

An update is the client's weights minus the global weights, over the floating-point
arrays of the model's state dict, concatenated in the record's key order.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord


def float_keys(record: ArrayRecord) -> list[str]:
    """Keys of the floating-point arrays (integer buffers are not averaged)."""
    return [k for k, a in record.items() if np.issubdtype(np.dtype(a.dtype), np.floating)]


def flat_delta(weights: ArrayRecord, global_weights: ArrayRecord) -> np.ndarray:
    """``weights - global_weights`` over the float arrays, as one float64 vector."""
    keys = float_keys(global_weights)
    return np.concatenate(
        [(weights[k].numpy().astype(np.float64) - global_weights[k].numpy()).ravel() for k in keys]
    )


def apply_delta(global_weights: ArrayRecord, delta: np.ndarray) -> ArrayRecord:
    """``global_weights + delta`` as an ArrayRecord of the global's dtypes and shapes."""
    float_set = set(float_keys(global_weights))
    size = sum(global_weights[k].numpy().size for k in float_set)
    if delta.size != size:
        raise ValueError(f"update has {delta.size} values, the model {size}")
    out = ArrayRecord()
    offset = 0
    for key, array in global_weights.items():
        value = array.numpy()
        if key in float_set:
            part = delta[offset : offset + value.size].reshape(value.shape)
            offset += value.size
            value = (value + part).astype(value.dtype)
        out[key] = Array(np.require(value, requirements="C"))  # keeps 0-d arrays 0-d
    return out
