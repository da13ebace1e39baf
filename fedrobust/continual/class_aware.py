"""Class-aware aggregation of the classifier head (``continual.method: class_aware``).

Federated-specific. FedAvg averages every head row over every client, weighted by the
clients' example counts, so a client that saw no example of class ``c`` in a round (it
is on another task, ``schedule: own``; its partition lacks the class; its buffer holds
none) still pulls row ``c`` towards the value it received, which its training only pushed
down (cross-entropy lowers the logits of absent classes). Here each output row ``c`` of
the head (weight row and bias) is the average of the clients' rows weighted by how many
examples of class ``c`` each trained on this round (task data plus replay buffer, as
their reply metrics ``train-class-<c>`` report); a row nobody trained keeps the global
value the round started from. The rest of the model is aggregated by the strategy.

No single paper defines this exact rule (the issue asks for a federated-specific method);
it is the head-only case of class-wise federated averaging, with the class weights the
clients' own training counts (cwFedAvg, Lee et al. 2024, https://arxiv.org/abs/2406.07800,
averages whole models class-wise with class distributions estimated from weight norms).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The reply metric with a client's training examples of class ``c`` this round.
TRAIN_CLASS = "train-class-{}"


def class_aware_rows(
    start: np.ndarray, rows: Sequence[np.ndarray], counts: np.ndarray
) -> np.ndarray:
    """Each row ``c``: the clients' rows ``c`` averaged with weights ``counts[:, c]``.

    Parameters
    ----------
    start : np.ndarray
        The global head tensor the round started from, one row per class (a weight
        ``(num_classes, features)`` or a bias ``(num_classes,)``).
    rows : sequence of np.ndarray
        The same tensor of each client, shaped like ``start``.
    counts : np.ndarray
        ``(clients, num_classes)``: examples of each class each client trained on.

    Returns
    -------
    np.ndarray
        Shaped and typed like ``start``; a row with no examples anywhere is ``start``'s.
    """
    counts = np.asarray(counts, dtype=np.float64)
    stacked = np.stack([np.asarray(r, dtype=np.float64) for r in rows])
    if counts.shape != stacked.shape[:2]:
        raise ValueError(f"counts {counts.shape} do not match rows {stacked.shape[:2]}")
    per_row = (slice(None), *[None] * (stacked.ndim - 2))  # a count per row, broadcast
    total = counts.sum(axis=0)
    mean = (stacked * counts[(slice(None), *per_row)]).sum(axis=0)
    mean /= np.where(total > 0, total, 1.0)[per_row]
    return np.where((total > 0)[per_row], mean, start).astype(start.dtype)


def class_counts(y: np.ndarray, num_classes: int) -> np.ndarray:
    """Examples of each class in the labels ``y`` (``(num_classes,)`` integers)."""
    return np.bincount(np.asarray(y, dtype=np.int64), minlength=num_classes)[:num_classes]
