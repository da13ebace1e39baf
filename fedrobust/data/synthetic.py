"""A seeded synthetic image source: ``data.dataset: synthetic:<C>x<H>x<W>:<classes>:<n>``.

For testing pipelines at any size and shape offline (CIFAR-shaped ``synthetic:3x32x32:10:
50000``, or a dataset of several GiB). Each class has a random low-frequency template per
channel (a coarse random grid, interpolated periodically to H x W). An example is its
class's template, moved by a random circular shift of up to an eighth of the image, plus
a random low-frequency field stronger than the template (the same for every class) and
pixel noise, centred on grey. No single pixel tells the classes apart well (about 18 %
for 10 classes); logistic regression on all pixels reaches about 70 % (3x32x32, 2,000
training examples); a CNN, which can follow the shift, more.

Examples are generated in fixed-size chunks, each from its own seeded stream, as 8-bit
pixels: the data depend only on the spec and the scenario seed (not on how they are
read), and a large ``n`` never needs a floating-point copy of more than one chunk.
Labels are balanced (every class ``n // classes`` or one more times), in a seeded order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from fedrobust.errors import FedrobustError
from fedrobust.seeds import Stream, stream

FIELD = "data.dataset"
PREFIX = "synthetic:"
#: Examples per generated chunk: part of the data's definition (each chunk has its stream).
CHUNK = 4096
#: Coarse grid of the templates and of the per-example field (low frequencies only).
GRID = 4
MAX_CHANNELS = 64
MAX_SIDE = 4096
MAX_CLASSES = 10_000
#: Largest dataset as 8-bit pixels (n * C * H * W bytes): 16 GiB.
MAX_BYTES = 16 * 2**30

SIGNAL, FIELD_STD, NOISE = 0.08, 0.15, 0.10  # in [0, 1] pixel units
_SPEC = re.compile(r"^(\d+)x(\d+)x(\d+):(\d+):(\d+)$")


@dataclass(frozen=True)
class SyntheticSpec:
    """What a ``synthetic:`` dataset name asks for.

    Parameters
    ----------
    shape : tuple[int, int, int]
        Image shape (C, H, W).
    classes : int
        Number of classes.
    n : int
        Number of examples.
    """

    shape: tuple[int, int, int]
    classes: int
    n: int

    @property
    def nbytes(self) -> int:
        """Size of the data as 8-bit pixels."""
        c, h, w = self.shape
        return self.n * c * h * w


def parse_synthetic(dataset: str) -> SyntheticSpec:
    """Read ``synthetic:<C>x<H>x<W>:<classes>:<n>``.

    Raises
    ------
    FedrobustError
        On ``data.dataset``: a malformed name, a zero, or a size beyond the limits
        (channels <= 64, sides <= 4096, 2 <= classes <= 10,000, classes <= n, 16 GiB
        of 8-bit pixels).
    """
    body = dataset[len(PREFIX) :] if dataset.startswith(PREFIX) else dataset
    match = _SPEC.match(body.strip())
    if match is None:
        raise FedrobustError(
            FIELD,
            f"'{dataset}' is not synthetic:<C>x<H>x<W>:<classes>:<n> "
            "(e.g. synthetic:3x32x32:10:50000)",
        )
    c, h, w, classes, n = (int(v) for v in match.groups())
    for name, value, top in (
        ("channels", c, MAX_CHANNELS),
        ("height", h, MAX_SIDE),
        ("width", w, MAX_SIDE),
        ("classes", classes, MAX_CLASSES),
    ):
        if not 1 <= value <= top:
            raise FedrobustError(FIELD, f"synthetic {name} must be 1..{top}, got {value}")
    if classes < 2:
        raise FedrobustError(FIELD, f"synthetic needs at least 2 classes, got {classes}")
    if n < classes:
        raise FedrobustError(
            FIELD, f"synthetic n ({n}) must be at least the number of classes ({classes})"
        )
    spec = SyntheticSpec(shape=(c, h, w), classes=classes, n=n)
    if spec.nbytes > MAX_BYTES:
        raise FedrobustError(
            FIELD,
            f"synthetic data of {spec.nbytes / 2**30:.1f} GiB (8-bit) exceeds the "
            f"{MAX_BYTES // 2**30} GiB limit; lower n or the image size",
        )
    return spec


def synthetic_labels(spec: SyntheticSpec, seed: int) -> np.ndarray:
    """The balanced labels of all ``n`` examples, in their seeded order (int64)."""
    y = np.arange(spec.n, dtype=np.int64) % spec.classes
    return stream(seed, Stream.SYNTHETIC, 0).permutation(y)


def synthetic_chunks(spec: SyntheticSpec, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield the dataset in order as ``(x, y)`` chunks of at most :data:`CHUNK` examples:
    ``x`` uint8 (m, C, H, W), ``y`` int64 (m,)."""
    c, h, w = spec.shape
    templates = stream(seed, Stream.SYNTHETIC, 1).standard_normal(
        (spec.classes, c, GRID, GRID), dtype=np.float32
    )
    templates /= templates.std(axis=(1, 2, 3), keepdims=True) + 1e-6
    max_shift_h, max_shift_w = h // 8, w // 8
    rows = np.stack([_interpolation(h, s) for s in range(-max_shift_h, max_shift_h + 1)])
    cols = np.stack([_interpolation(w, s) for s in range(-max_shift_w, max_shift_w + 1)])
    labels = synthetic_labels(spec, seed)
    for index, start in enumerate(range(0, spec.n, CHUNK)):
        y = labels[start : start + CHUNK]
        rng = stream(seed, Stream.SYNTHETIC, 2, index)
        dy = rng.integers(0, len(rows), len(y))
        dx = rng.integers(0, len(cols), len(y))
        signal = rows[dy][:, None] @ templates[y] @ cols[dx].transpose(0, 2, 1)[:, None]
        field = rng.standard_normal((len(y), c, GRID, GRID), dtype=np.float32)
        nuisance = rows[max_shift_h] @ field @ cols[max_shift_w].T
        x = rng.standard_normal(signal.shape, dtype=np.float32)
        x *= NOISE
        x += SIGNAL * signal
        x += FIELD_STD * nuisance
        x += 0.5
        x *= 255
        yield np.clip(np.rint(x, out=x), 0, 255, out=x).astype(np.uint8), y


def synthetic_images(spec: SyntheticSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole dataset as float32 inputs in [0, 1] and int64 labels, filled chunk by
    chunk (no float copy beyond one chunk's)."""
    x = np.empty((spec.n, *spec.shape), dtype=np.float32)
    y = np.empty(spec.n, dtype=np.int64)
    start = 0
    for x_chunk, y_chunk in synthetic_chunks(spec, seed):
        stop = start + len(y_chunk)
        np.multiply(x_chunk, np.float32(1 / 255), out=x[start:stop], dtype=np.float32)
        y[start:stop] = y_chunk
        start = stop
    return x, y


def _interpolation(size: int, shift: int) -> np.ndarray:
    """(size, GRID) weights that sample a periodic coarse grid linearly at ``size``
    points moved by ``shift`` pixels."""
    position = ((np.arange(size) + 0.5 - shift) * GRID / size - 0.5) % GRID
    low = np.floor(position).astype(np.int64)
    frac = (position - low).astype(np.float32)
    weights = np.zeros((size, GRID), dtype=np.float32)
    weights[np.arange(size), low % GRID] += 1 - frac
    weights[np.arange(size), (low + 1) % GRID] += frac
    return weights
