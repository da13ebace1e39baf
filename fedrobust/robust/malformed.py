"""The chaos client (``attack.kind: malformed``): replies no honest client would send.

Each malicious client sends, round by round, one class of bad reply (``replay``: a reply
that echoes the previous round, as a resent old reply does), cycling through
``attack.malformations`` (default: all). Every class but ``extra_metric`` must be
dropped by the server's screening with its own reason; ``extra_metric`` is harmless
(the strategy never sees a metric it does not weigh by) and is aggregated. The run
must complete every round; ``dropped`` in metrics.json counts each reason.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord

from fedrobust.federation.records import Record

#: class -> the drop reason the server's screening gives it (None: accepted).
MALFORMATIONS: dict[str, str | None] = {
    "wrong_shape": "wrong_shape",
    "lying_shape": "wrong_payload",
    "non_finite": "non_finite",
    "wrong_dtype": "wrong_dtype",
    "wrong_stype": "wrong_stype",
    "oversized": "oversized",
    "missing_key": "wrong_keys",
    "missing_record": "missing_records",
    "extra_record": "unexpected_records",
    "metric_type": "bad_metrics",
    "huge_num_examples": "bad_num_examples",
    "negative_num_examples": "bad_num_examples",
    "replay": "stale_reply",
    "extra_metric": None,
}


def malformation(classes: list[str], rnd: int, partition: int) -> str:
    """The class client ``partition`` sends in round ``rnd`` (each client starts elsewhere)."""
    return classes[(rnd - 1 + partition) % len(classes)]


def malform_metrics(kind: str, metrics: dict[str, float | int]) -> dict[str, float | int]:
    """The reply's metrics, broken as ``kind`` asks (unchanged for other classes)."""
    if kind == "metric_type":
        return {**metrics, "train-loss": [0.1, 0.2]}  # type: ignore[dict-item]
    if kind == "huge_num_examples":
        return {**metrics, "num-examples": 10**9}
    if kind == "negative_num_examples":
        return {**metrics, "num-examples": -5}
    if kind == "extra_metric":
        return {**metrics, "surprise": 1.0}
    if kind == "replay":  # what resending an earlier round's reply looks like
        return {**metrics, "round": int(metrics["round"]) - 1}
    return metrics


def malform_records(kind: str, records: dict[str, Record]) -> dict[str, Record]:
    """The reply's records, broken as ``kind`` asks (unchanged for other classes)."""
    arrays: ArrayRecord = records["arrays"]  # type: ignore[assignment]
    first = next(iter(arrays.keys()))
    layer = arrays[first].numpy()
    if kind == "missing_record":
        return {k: v for k, v in records.items() if k != "arrays"}
    if kind == "extra_record":
        return {**records, "surprise": ConfigRecord({"x": 1})}
    if kind == "missing_key":
        return {**records, "arrays": ArrayRecord({k: arrays[k] for k in list(arrays)[1:]})}
    replaced: Array
    if kind == "wrong_shape":
        replaced = Array(np.zeros((*layer.shape, 2), layer.dtype))
    elif kind == "lying_shape":  # a scalar that declares the layer's shape
        scalar = Array(np.array(1e6, dtype=layer.dtype))
        replaced = Array(dtype=scalar.dtype, shape=tuple(layer.shape), stype=scalar.stype,
                         data=scalar.data)  # fmt: skip
    elif kind == "non_finite":
        bad = layer.copy()
        bad.flat[0] = np.nan
        replaced = Array(bad)
    elif kind == "wrong_dtype":
        replaced = Array(layer.astype(np.float64))
    elif kind == "wrong_stype":
        good = Array(layer)
        replaced = Array(dtype=good.dtype, shape=tuple(good.shape), stype="pickle",
                         data=good.data)  # fmt: skip
    elif kind == "oversized":  # the right declaration over a payload 100 times too big
        good = Array(layer)
        replaced = Array(dtype=good.dtype, shape=tuple(good.shape), stype=good.stype,
                         data=good.data * 100)  # fmt: skip
    else:
        return records
    out = ArrayRecord({k: (replaced if k == first else arrays[k]) for k in arrays})
    return {**records, "arrays": out}
