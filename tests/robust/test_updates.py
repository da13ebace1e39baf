"""Poisoned replies keep the model's array shapes (0-d buffers included)."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord

from fedrobust.robust.updates import apply_delta


def test_apply_delta_adds_to_float_arrays_and_keeps_a_0d_buffer_0d() -> None:
    weights = ArrayRecord(
        {"w": Array(np.ones((2, 2), np.float32)), "count": Array(np.array(7, np.int64))}
    )
    out = apply_delta(weights, np.arange(4, dtype=np.float32))
    assert out["w"].numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert out["count"].numpy().shape == () and int(out["count"].numpy()) == 7
