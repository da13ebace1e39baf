"""Replies rebuilt by the drift strategies keep the model's array shapes."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord

from fedrobust.strategy.drift import replace_floats


def test_replace_floats_swaps_float_arrays_and_keeps_a_0d_buffer_0d() -> None:
    record = ArrayRecord(
        {"w": Array(np.zeros(3, np.float32)), "count": Array(np.array(4, np.int64))}
    )
    out = replace_floats(record, {"w": np.array([1.0, 2.0, 3.0])})
    assert out["w"].numpy().dtype == np.float32 and out["w"].numpy().tolist() == [1, 2, 3]
    assert out["count"].numpy().shape == ()
