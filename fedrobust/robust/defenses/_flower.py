"""Flat updates as the RecordDicts Flower's selection rules take."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict

from fedrobust.robust.defenses.base import Updates

KEY = "update"


def as_contents(updates: Updates) -> list[RecordDict]:
    """One RecordDict per client: its update as one flat array and its example count."""
    return [
        RecordDict(
            {
                "arrays": ArrayRecord({KEY: Array(np.ascontiguousarray(delta))}),
                "metrics": MetricRecord({"num-examples": float(weight)}),
            }
        )
        for delta, weight in zip(updates.deltas, updates.weights, strict=True)
    ]
