"""Arithmetic on attribution maps: which examples, per-class means, what a figure shows,
and the share of the attribution inside a backdoor trigger."""

from __future__ import annotations

import numpy as np

from fedrobust.robust.config import AttackConfig
from fedrobust.robust.poisoning import stamp_trigger
from fedrobust.seeds import Stream, stream

#: The explained examples are drawn from the robust-evaluation subset's stream with this
#: extra int (issue 23), so they need no tag of their own.
SAMPLE_STREAM = 23


def stratified_indices(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` examples of ``y``, as many of each class as there are (round
    robin over the classes, each class's examples in a seeded random order); sorted.

    Returns every index when ``n`` is at least ``len(y)``.
    """
    if n >= len(y):
        return np.arange(len(y))
    rng = stream(seed, Stream.HOLDOUT, SAMPLE_STREAM)
    queues = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    # the k-th example of every class that has one, for k = 0, 1, ...: round robin
    turns = np.concatenate([np.arange(len(q)) for q in queues])
    order = np.argsort(turns, kind="stable")
    return np.sort(np.concatenate(queues)[order][:n])


def shares(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its total absolute attribution (a map of zeros stays zero):
    maps of different scales count alike in a mean."""
    flat = maps.reshape(len(maps), -1)
    total = np.abs(flat).sum(1, keepdims=True)
    return (flat / np.where(total > 0, total, 1.0)).reshape(maps.shape)


def class_means(maps: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[int, np.ndarray]:
    """The mean of the normalised maps (:func:`shares`) of each class present in
    ``labels``."""
    normalised = shares(maps)
    return {c: normalised[labels == c].mean(0) for c in range(num_classes) if (labels == c).any()}


def display(maps: np.ndarray) -> np.ndarray:
    """What a figure shows of maps shaped (N, *input shape): images (N, C, H, W) summed
    over the channels to (N, H, W); other inputs as they are."""
    return maps.sum(1) if maps.ndim == 4 else maps


def trigger_mask(attack: AttackConfig, shape: tuple[int, ...]) -> np.ndarray:
    """The features the backdoor trigger writes, for inputs of ``shape`` (bool, same
    shape): the geometry of :func:`fedrobust.robust.poisoning.stamp_trigger`."""
    marker = attack.model_copy(update={"trigger_value": 1.0})
    return stamp_trigger(marker, np.zeros((1, *shape), dtype=np.float32))[0] == 1.0


def mask_fraction(maps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per map: the share of its total absolute attribution inside ``mask`` (0 for a
    map of zeros)."""
    magnitude = np.abs(maps.reshape(len(maps), -1))
    total = magnitude.sum(1)
    inside = magnitude[:, mask.reshape(-1)].sum(1)
    return np.where(total > 0, inside / np.where(total > 0, total, 1.0), 0.0)
