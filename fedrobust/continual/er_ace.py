"""Experience replay with asymmetric cross-entropy (ER-ACE).

Caccia et al. 2022, "New Insights on Reducing Abrupt Representation Change in Online
Continual Learning", https://arxiv.org/abs/2104.05025. The incoming batch's cross-entropy
is taken over the classes present in that batch only (the other logits are masked), so
new classes do not push the old ones' logits down; the buffer batch's over all classes.
"""

from __future__ import annotations

import torch
from torch import nn

from fedrobust.continual.replay import ReservoirBuffer
from fedrobust.continual.tasks import MASK_VALUE, MaskedHead
from fedrobust.train.plugins import TrainPlugin


def asymmetric_logits(logits: torch.Tensor, y: torch.Tensor, incoming: int) -> torch.Tensor:
    """Mask, in the first ``incoming`` rows, the logits of classes absent from ``y[:incoming]``.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, K)`` scores of the incoming rows followed by the buffer's.
    y : torch.Tensor
        ``(N,)`` labels in the same order.
    incoming : int
        Rows of the incoming batch.

    Returns
    -------
    torch.Tensor
        A new tensor; cross-entropy on it is ER-ACE's loss (masked entries carry no gradient).
    """
    keep = torch.ones_like(logits, dtype=torch.bool)
    present = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    present[y[:incoming]] = True
    keep[:incoming] = present
    fill = max(MASK_VALUE, torch.finfo(logits.dtype).min)
    return logits.masked_fill(~keep, fill)


class AsymmetricHead(MaskedHead):
    """The model whose incoming rows are masked to their batch's classes while training.

    A :class:`~fedrobust.continual.tasks.MaskedHead` over every class (so LwF distils the
    wrapped model's own logits), with a per-row mask :class:`ERACE` sets for each batch.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model, [])
        self.rows: tuple[torch.Tensor, int] | None = None  # (labels, incoming rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if not self.training or self.rows is None or len(self.rows[0]) != len(x):
            return logits
        y, incoming = self.rows
        return asymmetric_logits(logits, y.to(logits.device), incoming)


class ERACE(TrainPlugin):
    """ER-ACE: append a buffer batch; score the incoming rows over their own classes only.

    ``local_train`` hands plugins the network and the reduced loss, never the logits, so
    (like :class:`~fedrobust.continual.tasks.TaskMask`) ``before_training`` wraps the model
    in :class:`AsymmetricHead` and ``batch`` tells it which rows are incoming. The loop's
    criterion then gives the mean over the concatenated batch: with ``ratio`` 1 it is half
    the paper's sum of the two means.

    Parameters
    ----------
    buffer : ReservoirBuffer
        The memory (may be empty: the incoming batch is still masked).
    ratio : float
        Buffer examples appended per incoming example.
    seed : int
        Seeds the draws.

    Notes
    -----
    Place it first, before plugins that change the batch (augmentation keeps its order and
    size) or snapshot the model.
    """

    def __init__(self, buffer: ReservoirBuffer, ratio: float, seed: int) -> None:
        self.buffer = buffer
        self.ratio = ratio
        self.generator = torch.Generator().manual_seed(seed)
        self.head: AsymmetricHead | None = None

    def before_training(self, model: nn.Module) -> nn.Module:
        self.head = AsymmetricHead(model)
        return self.head

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.head is None:
            raise RuntimeError("ERACE.batch called before before_training")
        incoming = len(x)
        n = round(self.ratio * incoming)
        if n > 0 and len(self.buffer) > 0:
            xr, yr = self.buffer.sample(n, self.generator)
            x = torch.cat([x, xr.to(x.device, x.dtype)])
            y = torch.cat([y, yr.to(y.device, y.dtype)])
        self.head.rows = (y, incoming)
        return x, y
