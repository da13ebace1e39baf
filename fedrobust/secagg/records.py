"""SecAgg+ stage messages as Flower records, and back.

One Flower message may carry the stages of two protocol instances at once (a pipelined
round: this round's collect_masked_vectors with the next round's setup, this round's unmask
with the next round's share_keys), so each stage message is a *part* tagged with the round
of its instance. A part is a dict of ints, floats, strings, bytes, lists of those and lists
of numpy arrays: arrays travel in an ArrayRecord ``secagg-arrays.<round>`` (one key per list
item, ``<name>.<index>``), everything else in a ConfigRecord ``secagg.<round>``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

CONFIG_PREFIX = "secagg."
ARRAYS_PREFIX = "secagg-arrays."


def add_part(record: RecordDict, rnd: int, message: dict[str, Any]) -> RecordDict:
    """Put round ``rnd``'s stage message into ``record``; return ``record``.

    Parameters
    ----------
    record : RecordDict
        The message content (it may already hold another round's part, or training
        instructions).
    rnd : int
        The round of the protocol instance the stage belongs to.
    message : dict[str, Any]
        The stage message (``{"stage": ..., ...}``).

    Returns
    -------
    RecordDict
        ``record``.
    """
    config = ConfigRecord()
    arrays = ArrayRecord()
    for key, value in message.items():
        if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
            for i, array in enumerate(value):
                arrays[f"{key}.{i}"] = Array(np.ascontiguousarray(array))
        else:
            config[key] = value
    record[f"{CONFIG_PREFIX}{int(rnd)}"] = config
    if len(arrays):
        record[f"{ARRAYS_PREFIX}{int(rnd)}"] = arrays
    return record


def read_parts(record: RecordDict) -> dict[int, dict[str, Any]]:
    """Every stage message ``record`` carries, by round (ascending).

    Raises ``ValueError`` (or ``KeyError``/``TypeError``) on a malformed part: a key that
    names no round, arrays without their part, an array list with a gap.
    """
    parts: dict[int, dict[str, Any]] = {}
    for key, config in record.config_records.items():
        if key.startswith(CONFIG_PREFIX):
            parts[_round_of(key, CONFIG_PREFIX)] = dict(config)
    for key, arrays in record.array_records.items():
        if not key.startswith(ARRAYS_PREFIX):
            continue
        part = parts[_round_of(key, ARRAYS_PREFIX)]  # KeyError: arrays without a part
        lists: dict[str, dict[int, np.ndarray]] = {}
        for name_index, array in arrays.items():
            name, _, index = name_index.rpartition(".")
            lists.setdefault(name, {})[int(index)] = array.numpy()
        for name, items in lists.items():
            if sorted(items) != list(range(len(items))):
                raise ValueError(f"secagg arrays {name!r}: indices {sorted(items)} have gaps")
            part[name] = [items[i] for i in range(len(items))]
    return dict(sorted(parts.items()))


def part_keys(record: RecordDict) -> tuple[str, ...]:
    """The record names of every SecAgg+ part in ``record`` (to drop them)."""
    return tuple(
        key for key in record if key.startswith(CONFIG_PREFIX) or key.startswith(ARRAYS_PREFIX)
    )


def _round_of(key: str, prefix: str) -> int:
    suffix = key[len(prefix) :]
    if not suffix.isdigit():
        raise ValueError(f"{key!r}: a SecAgg+ part names no round")
    return int(suffix)
