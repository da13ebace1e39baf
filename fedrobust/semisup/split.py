"""Which of a client's training examples keep their labels (``data.labeled_fraction``).

The choice is the client's own and the same in every round: a stream of the scenario's
seed and the client's partition id (:data:`fedrobust.seeds.Stream.LABELED`). It is
stratified: each class keeps its share of the labels, the rounding remainders going to
the classes closest to their next label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrobust.seeds import Stream, stream


@dataclass(frozen=True)
class LabeledSplit:
    """A client's training data cut in two: ``x``/``y`` labelled, ``unlabeled`` inputs."""

    x: np.ndarray
    y: np.ndarray
    unlabeled: np.ndarray


def labeled_count(n: int, fraction: float) -> int:
    """How many of ``n`` examples keep their labels: ``round(fraction * n)``, at least 1."""
    return min(n, max(1, round(fraction * n)))


def labeled_indices(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """The sorted indices of the examples of ``y`` that keep their labels.

    Parameters
    ----------
    y : np.ndarray
        The client's training labels.
    fraction : float
        Share to keep, in (0, 1].
    rng : np.random.Generator
        Draws the examples (and breaks ties between classes).

    Returns
    -------
    np.ndarray
        ``labeled_count(len(y), fraction)`` indices, each class contributing in
        proportion to its count (largest remainders first).
    """
    if len(y) == 0:
        return np.zeros(0, dtype=np.int64)
    classes, counts = np.unique(y, return_counts=True)
    quota = fraction * counts
    take = np.floor(quota).astype(np.int64)
    remainder = labeled_count(len(y), fraction) - int(take.sum())
    if remainder > 0:
        room = np.flatnonzero(take < counts)
        tie_break = rng.random(len(room))
        order = room[np.lexsort((tie_break, -(quota - take)[room]))]
        take[order[:remainder]] += 1
    chosen = [
        rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def split_labeled(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int, partition: int
) -> LabeledSplit:
    """Client ``partition``'s labelled part of ``(x, y)`` and its unlabelled inputs."""
    keep = labeled_indices(y, fraction, stream(seed, Stream.LABELED, partition))
    rest = np.ones(len(y), dtype=bool)
    rest[keep] = False
    return LabeledSplit(x=x[keep], y=y[keep], unlabeled=x[rest])
