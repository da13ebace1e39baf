"""Per-client transforms: long-tail imbalance, limited data, label noise (training data),
and a feature shift (all of a client's inputs); and the dataset-wide resize.

Each takes the client's (indices, labels) and a numpy Generator and returns new arrays;
nothing is changed in place. Label noise keeps the clean labels so the real noise rate
is measured, not assumed.
"""

from __future__ import annotations

import math

import numpy as np

from fedrobust.data.config import (
    FeatureShiftConfig,
    ImbalanceConfig,
    LabelNoiseConfig,
    LimitedConfig,
)
from fedrobust.errors import FedrobustError


def long_tail_keep_fractions(num_classes: int, ratio: float, order: np.ndarray) -> np.ndarray:
    """Fraction of each class to keep: ``ratio ** (rank / (K - 1))`` by rank in ``order``.

    The class at rank 0 keeps everything; the last keeps ``ratio`` of its samples, so
    least/most frequent equals ``ratio`` on balanced data.
    """
    fractions = np.empty(num_classes)
    for rank, cls in enumerate(order):
        fractions[cls] = ratio ** (rank / max(num_classes - 1, 1))
    return fractions


def apply_imbalance(
    rows: np.ndarray,
    labels: np.ndarray,
    cfg: ImbalanceConfig,
    num_classes: int,
    order: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Subsample ``rows`` so class frequencies follow a long tail.

    ``order`` ranks the classes from head to tail; it is shared by all clients so the
    federation as a whole has the same rare classes.
    """
    keep_fraction = long_tail_keep_fractions(num_classes, cfg.ratio, order)
    kept: list[np.ndarray] = []
    for cls in range(num_classes):
        members = rows[labels[rows] == cls]
        count = int(round(len(members) * keep_fraction[cls]))
        if count:
            kept.append(rng.choice(members, size=count, replace=False))
    if not kept:
        return rows[:1]
    return np.sort(np.concatenate(kept))


def apply_limited(rows: np.ndarray, cfg: LimitedConfig, rng: np.random.Generator) -> np.ndarray:
    """Keep a random ``fraction`` of ``rows`` or at most ``max_samples`` (at least one)."""
    if cfg.fraction is not None:
        count = max(1, int(round(len(rows) * cfg.fraction)))
    else:
        assert cfg.max_samples is not None
        count = min(len(rows), cfg.max_samples)
    return np.sort(rng.choice(rows, size=count, replace=False))


def apply_label_noise(
    labels: np.ndarray, cfg: LabelNoiseConfig, num_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Return corrupted copies of ``labels``.

    symmetric: with probability ``rate`` a label becomes one of the other classes,
    uniformly. pairflip: with probability ``rate`` class c becomes (c + 1) mod K.
    """
    noisy = labels.copy()
    flip = rng.random(len(labels)) < cfg.rate
    if cfg.kind == "symmetric":
        shift = rng.integers(1, num_classes, size=len(labels))
        noisy[flip] = (labels[flip] + shift[flip]) % num_classes
    else:
        noisy[flip] = (labels[flip] + 1) % num_classes
    return noisy


def shift_strength(client: int, num_clients: int) -> float:
    """Client ``client``'s place in the shift's range: 0 for the first, 1 for the last."""
    return client / (num_clients - 1) if num_clients > 1 else 0.0


def apply_feature_shift(
    x: np.ndarray, cfg: FeatureShiftConfig, client: int, num_clients: int
) -> np.ndarray:
    """Client ``client``'s inputs ``x`` (in [0, 1]) under its fixed shift.

    rotate: images (N, C, H, W) by ``strength * degrees``; contrast: any inputs (images,
    sequences), ``0.5 + c (x - 0.5)`` with ``c`` from 1 (strength 0) down to
    ``min_contrast`` (strength 1). Returns a new float32 array.
    """
    strength = shift_strength(client, num_clients)
    if cfg.kind == "contrast":
        factor = 1.0 - strength * (1.0 - cfg.min_contrast)
        return (0.5 + factor * (x - 0.5)).astype(np.float32)
    if x.ndim != 4:
        raise ValueError("data.feature_shift kind 'rotate' needs image inputs (N, C, H, W)")
    if len(x) == 0 or strength == 0:
        return x.astype(np.float32, copy=True)
    import torch

    from fedrobust.data.augment import rotate

    angle = torch.full((len(x),), math.radians(strength * cfg.degrees))
    return rotate(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), angle).numpy()


def resize_images(x: np.ndarray, size: tuple[int, int], field: str) -> np.ndarray:
    """Images ``x`` (N, C, H, W) resized to ``size`` (bilinear; antialiased when shrinking).

    Done in chunks of 1,024 images, so a large dataset never exists twice as float32
    tensors at once beyond one chunk.
    """
    if x.ndim != 4:
        raise FedrobustError(field, f"resizes images only; the inputs have shape {x.shape[1:]}")
    import torch
    import torch.nn.functional as F

    height, width = size
    shrinking = height < x.shape[2] or width < x.shape[3]
    out = np.empty((len(x), x.shape[1], height, width), dtype=np.float32)
    for start in range(0, len(x), 1024):
        chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + 1024], np.float32))
        resized = F.interpolate(
            chunk, size=size, mode="bilinear", align_corners=False, antialias=shrinking
        )
        out[start : start + len(chunk)] = resized.clamp_(0.0, 1.0).numpy()
    return out
