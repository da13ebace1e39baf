"""SecAgg+ stage messages as Flower records, and back.

A stage message is a dict of ints, floats, strings, bytes, lists of those and lists of
numpy arrays. Arrays travel in an ArrayRecord (``secagg-arrays``, one key per list item,
``<name>.<index>``); everything else in a ConfigRecord (``secagg``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

CONFIG_KEY = "secagg"
ARRAYS_KEY = "secagg-arrays"


def to_records(message: dict[str, Any], into: RecordDict | None = None) -> RecordDict:
    """Put ``message`` into ``into`` (a new RecordDict by default) and return it."""
    record = RecordDict() if into is None else into
    config = ConfigRecord()
    arrays = ArrayRecord()
    for key, value in message.items():
        if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
            for i, array in enumerate(value):
                arrays[f"{key}.{i}"] = Array(np.ascontiguousarray(array))
        else:
            config[key] = value
    record[CONFIG_KEY] = config
    if len(arrays):
        record[ARRAYS_KEY] = arrays
    return record


def from_records(record: RecordDict) -> dict[str, Any]:
    """The stage message a RecordDict carries (raises ``KeyError`` without one)."""
    message: dict[str, Any] = dict(record.config_records[CONFIG_KEY])
    arrays = record.array_records.get(ARRAYS_KEY)
    if arrays is not None:
        lists: dict[str, dict[int, np.ndarray]] = {}
        for key, array in arrays.items():
            name, _, index = key.rpartition(".")
            lists.setdefault(name, {})[int(index)] = array.numpy()
        for name, items in lists.items():
            message[name] = [items[i] for i in sorted(items)]
    return message
