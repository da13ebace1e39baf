"""A data source read in chunks, inputs in the dtype they are stored in: what the
federation store (:mod:`fedrobust.data.store`) writes from.

``synthetic:`` and ``hf:`` sources arrive chunk by chunk, as 8-bit pixels where the
source has them, so a large dataset never exists in memory at once, nor as float32 at
all; the other sources (``mnist-5k``, ``digits``, ``npz:``) are read whole, as float32,
as :func:`~fedrobust.data.sources.load_source` reads them. ``data.resize`` (float32
out) and ``data.sequence`` are applied to each chunk. :func:`to_float` turns stored
inputs into the float32 values in [0, 1] that :func:`load_source` gives, bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedrobust.data.config import DataConfig
from fedrobust.data.sequence import read_rows
from fedrobust.data.sources import (
    FIELD,
    channels_first,
    hf_split,
    label_indices,
    load_source,
    scale_inputs,
)
from fedrobust.data.transforms import resize_images
from fedrobust.errors import FedrobustError

#: Examples per chunk of a Hugging Face dataset (a multiple of ``resize_images``' 1,024).
CHUNK = 4096
#: How 8-bit inputs become [0, 1]: ``x / 255`` (sources.scale_inputs, mnist) or
#: ``x * float32(1 / 255)`` (the synthetic source); the two can differ in the last bit.
SCALES = ("divide", "multiply")


@dataclass(frozen=True)
class StreamedSource:
    """A labelled source whose inputs arrive in chunks.

    Parameters
    ----------
    y : np.ndarray
        int64 labels 0..K-1 of all examples.
    classes : list[str]
        Original label of each class index.
    scale : str
        How 8-bit chunks become float32 (:data:`SCALES`); float32 chunks stay as they are.
    chunks : Iterator[np.ndarray]
        The inputs in order: uint8 or float32, channel-first, resized and read as
        sequences as the ``data`` section asks.
    """

    y: np.ndarray
    classes: list[str]
    scale: str
    chunks: Iterator[np.ndarray]


def to_float(x: np.ndarray, scale: str) -> np.ndarray:
    """Stored inputs ``x`` as float32 in [0, 1]: 8-bit pixels scaled by ``scale``; float32
    inputs are returned as they are (no copy)."""
    if x.dtype == np.float32:
        return np.asarray(x)
    if scale == "multiply":
        return np.multiply(x, np.float32(1 / 255), dtype=np.float32)
    return np.asarray(x).astype(np.float32) / 255.0


def stream_source(data: DataConfig, seed: int) -> StreamedSource:
    """The ``data`` section's source in chunks (``resize`` and ``sequence`` applied)."""
    dataset = data.dataset
    if dataset.startswith("synthetic:"):
        from fedrobust.data.synthetic import parse_synthetic, synthetic_chunks, synthetic_labels

        spec = parse_synthetic(dataset)
        y = synthetic_labels(spec, seed)
        chunks: Iterable[np.ndarray] = (x for x, _ in synthetic_chunks(spec, seed))
        classes, scale = [str(k) for k in range(spec.classes)], "multiply"
    elif dataset.startswith("hf:"):
        split, image_key, label_key = hf_split(dataset[3:], data.image_key, data.label_key)
        y, classes = _labels(np.asarray(split.with_format("numpy")[label_key]), len(split))
        chunks, scale = hf_chunks(split, image_key, dataset[3:]), "divide"
    else:
        source = load_source(dataset, data.image_key, data.label_key, seed=seed)
        y, classes, chunks, scale = source.y, source.classes, [source.x], "divide"
    return StreamedSource(y=y, classes=classes, scale=scale, chunks=_prepared(chunks, data, scale))


def hf_chunks(split: Any, image_key: str, name: str, chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """The ``image_key`` column of a ``datasets.Dataset`` in chunks of ``chunk`` rows,
    channel-first: integer pixels as uint8 (checked to lie in 0..255), other inputs as
    float32 (checked as :func:`~fedrobust.data.sources.scale_inputs` checks them).

    Raises
    ------
    FedrobustError
        On ``data.image_key`` when inputs differ in shape or kind (integer or float)
        within or between chunks; on ``data.dataset`` for values out of range.
    """
    table = split.with_format("numpy")
    first: tuple[np.dtype, tuple[int, ...]] | None = None
    for start in range(0, len(table), chunk):
        try:
            x = np.stack([np.asarray(item) for item in table[start : start + chunk][image_key]])
        except ValueError as exc:
            raise FedrobustError(
                "data.image_key", f"inputs of '{name}' differ in shape: {exc}"
            ) from None
        x = channels_first(_narrow(x), FIELD)
        if first is None:
            first = (x.dtype, x.shape[1:])
        elif (x.dtype, x.shape[1:]) != first:
            raise FedrobustError(
                "data.image_key",
                f"inputs of '{name}' differ in shape or kind: {first[0]} {first[1]} in the "
                f"first rows, {x.dtype} {x.shape[1:]} from row {start}",
            )
        yield x


def _narrow(x: np.ndarray) -> np.ndarray:
    """Integer pixels as uint8 (0..255 checked); anything else as float32 in [0, 1]."""
    if np.issubdtype(x.dtype, np.integer):
        if x.size and (x.min() < 0 or x.max() > 255):
            raise FedrobustError(
                FIELD, f"integer x must be 8-bit pixels 0..255 (found {x.min()}..{x.max()})"
            )
        return x.astype(np.uint8)
    return scale_inputs(x, FIELD)


def _labels(y: np.ndarray, n: int) -> tuple[np.ndarray, list[str]]:
    """The labels of ``n`` examples as indices (the checks of ``sources._finish``)."""
    if len(y) != n:
        raise FedrobustError(FIELD, f"x has {n} samples but y has {len(y)}")
    if n == 0:
        raise FedrobustError(FIELD, "the dataset is empty")
    if y.ndim != 1:
        raise FedrobustError(FIELD, f"y must be one label per sample, got shape {y.shape}")
    return label_indices(y, FIELD)


def _prepared(chunks: Iterable[np.ndarray], data: DataConfig, scale: str) -> Iterator[np.ndarray]:
    """Each chunk resized (``data.resize``: float32 out) and read as sequences."""
    for x in chunks:
        if data.resize is not None:
            x = resize_images(to_float(x, scale), tuple(data.resize), "data.resize")
        if data.sequence is not None:
            x = read_rows(x)
        yield x
