"""Sequences from images and arrays: ``data.sequence: rows``.

An image (C, H, W) is read row by row, top to bottom: step ``t`` is row ``t`` with
its W pixels of every channel, so the model sees a sequence (T = H, F = W * C). On
MNIST this is the classic sequential-MNIST task (Le, Jaitly & Hinton 2015,
https://arxiv.org/abs/1504.00941, read by rows rather than pixel by pixel). An ``npz:``
file whose ``x`` is (N, T, F) arrives as one-channel "images" (N, 1, T, F) and reads
back as the sequences it holds: T steps of F features.
"""

from __future__ import annotations

import numpy as np

from fedrobust.data.sources import Source
from fedrobust.errors import FedrobustError

FIELD = "data.sequence"


def read_rows(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) inputs as (N, H, W * C) sequences, the channels of a pixel together.

    Raises
    ------
    FedrobustError
        Naming ``data.sequence`` for inputs that are not images (N, D).
    """
    if x.ndim != 4:
        raise FedrobustError(
            FIELD,
            f"rows needs images (N, C, H, W) or sequences (N, T, F); the data's inputs "
            f"are {x.shape[1:]}",
        )
    n, c, h, w = x.shape
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)).reshape(n, h, w * c))


def as_sequences(source: Source, kind: str | None) -> Source:
    """``source`` with its inputs as sequences under ``data.sequence`` (unchanged for None)."""
    if kind is None:
        return source
    return Source(x=read_rows(source.x), y=source.y, classes=source.classes)
