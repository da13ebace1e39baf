"""Continual-learning metrics from the accuracy matrix ``R[i][j]``.

``R[i][j]`` is the accuracy on task ``j`` after training task ``i``. With ``T`` rows:

* average accuracy: mean of ``R[T-1][j]`` over ``j <= T-1``;
* forgetting (Chaudhry et al. 2018, https://arxiv.org/abs/1801.10112): mean over
  ``j < T-1`` of ``max_{j <= i < T-1} R[i][j] - R[T-1][j]``;
* backward transfer (Lopez-Paz & Ranzato 2017, https://arxiv.org/abs/1706.08840): mean
  over ``j < T-1`` of ``R[T-1][j] - R[j][j]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


class ContinualMetrics:
    """Accumulates the accuracy matrix row by row and summarises it.

    Rows must be recorded in task order. A row holds at least the tasks seen so far
    (``j <= i``); it may hold later tasks too (for forward-transfer plots), which the
    summaries ignore.
    """

    def __init__(self) -> None:
        self.rows: list[list[float]] = []

    def record(self, task: int, accuracies: Sequence[float]) -> None:
        """Record row ``task``: ``accuracies[j]`` on task ``j`` after training ``task``.

        Parameters
        ----------
        task : int
            The task just trained; must be the next row (``len(self.rows)``).
        accuracies : sequence of float
            At least ``task + 1`` values (tasks ``0..task``), optionally more.
        """
        if task != len(self.rows):
            raise ValueError(f"record: expected row {len(self.rows)}, got {task}")
        if len(accuracies) < task + 1:
            raise ValueError(f"record: row {task} needs >= {task + 1} accuracies")
        values = [float(a) for a in accuracies]
        if any(not math.isfinite(a) for a in values):
            raise ValueError(f"record: accuracies must be finite, got {values}")
        self.rows.append(values)

    @property
    def num_tasks(self) -> int:
        """Rows recorded so far (``T``)."""
        return len(self.rows)

    def average_accuracy(self) -> float | None:
        """Mean accuracy over the seen tasks after the last one (``None`` before any)."""
        if not self.rows:
            return None
        last = len(self.rows) - 1
        return sum(self.rows[last][: last + 1]) / (last + 1)

    def forgetting(self) -> float | None:
        """Mean drop from each earlier task's best accuracy (``None`` with < 2 tasks)."""
        last = len(self.rows) - 1
        if last < 1:
            return None
        drops = [
            max(self.rows[i][j] for i in range(j, last)) - self.rows[last][j] for j in range(last)
        ]
        return sum(drops) / last

    def bwt(self) -> float | None:
        """Backward transfer: mean change on earlier tasks since learning them (or ``None``)."""
        last = len(self.rows) - 1
        if last < 1:
            return None
        return sum(self.rows[last][j] - self.rows[j][j] for j in range(last)) / last

    def to_dict(self) -> dict[str, object]:
        """JSON-safe summary: the matrix (a list of rows), average accuracy, forgetting, BWT."""
        return {
            "accuracy_matrix": [list(row) for row in self.rows],
            "average_accuracy": self.average_accuracy(),
            "forgetting": self.forgetting(),
            "bwt": self.bwt(),
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The matrix as one float64 tensor ``accuracy``, rows padded with NaN."""
        width = max((len(row) for row in self.rows), default=0)
        matrix = torch.full((len(self.rows), width), math.nan, dtype=torch.float64)
        for i, row in enumerate(self.rows):
            matrix[i, : len(row)] = torch.tensor(row, dtype=torch.float64)
        return {"accuracy": matrix}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the matrix from :meth:`state_dict`'s output."""
        matrix = state["accuracy"]
        self.rows = [[float(a) for a in row if not math.isnan(float(a))] for row in matrix.tolist()]
