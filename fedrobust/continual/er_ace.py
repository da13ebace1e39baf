"""Experience replay with asymmetric cross-entropy (ER-ACE).

Caccia et al. 2022, "New Insights on Reducing Abrupt Representation Change in Online
Continual Learning", https://arxiv.org/abs/2104.05025. The incoming batch's cross-entropy
is taken over the classes present in that batch only (the other logits are masked), so
new classes do not push the old ones' logits down; the memory batch's over all classes.

The paper's learner is online: its reservoir takes every incoming batch, so the memory
batch holds the current task's classes as well as the old ones, and its all-class
cross-entropy is what teaches old logits to stay below new ones on new examples. Here a
task's data joins the buffer only when the task ends, so the memory batch is drawn from
the buffer and the current task's data together, each seen task equally likely: the
current task gives ``1 / (finished tasks + 1)`` of it, the share a reservoir over a
stream of equal tasks would hold (class-incrementally with equal class groups, each seen
class equally likely; domain-incrementally, where every task has every class, the old
domains still get their share).
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
    """ER-ACE: append a memory batch; score the incoming rows over their own classes only.

    ``local_train`` hands plugins the network and the reduced loss, never the logits, so
    (like :class:`~fedrobust.continual.tasks.TaskMask`) ``before_training`` wraps the model
    in :class:`AsymmetricHead` and ``batch`` tells it which rows are incoming. The loop's
    criterion then gives the mean over the concatenated batch: with ``ratio`` 1 it is half
    the paper's sum of the two means.

    Parameters
    ----------
    buffer : ReservoirBuffer
        The finished tasks' examples (may be empty).
    ratio : float
        Memory examples appended per incoming example.
    seed : int
        Seeds the draws.
    current : tuple of torch.Tensor, optional
        The current task's inputs and labels: the memory batch draws ``share`` of its
        examples from them, the rest from the buffer. Without them the memory batch is
        the buffer's alone.
    share : float, optional
        The current task's share of the memory batch (module docstring); default: by
        classes, ``|current classes| / |current and buffer classes|``.

    Notes
    -----
    Place it first, before plugins that change the batch (augmentation keeps its order and
    size) or snapshot the model.
    """

    def __init__(
        self,
        buffer: ReservoirBuffer,
        ratio: float,
        seed: int,
        current: tuple[torch.Tensor, torch.Tensor] | None = None,
        share: float | None = None,
    ) -> None:
        self.buffer = buffer
        self.ratio = ratio
        self.generator = torch.Generator().manual_seed(seed)
        self.head: AsymmetricHead | None = None
        self.current = current if current is not None and len(current[1]) else None
        self.share = 0.0  # of the memory batch drawn from the current task
        if self.current is not None and not len(buffer):
            self.share = 1.0
        elif self.current is not None and share is not None:
            self.share = share
        elif self.current is not None:
            new = set(self.current[1].tolist())
            old = set(buffer.counts()) - new
            self.share = len(new) / (len(new) + len(old))

    def memory(self, n: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``n`` memory examples: ``round(share * n)`` of the current task's, the rest
        the buffer's (fewer when the buffer holds fewer); ``None`` when there are none."""
        k = round(self.share * n)
        parts = []
        if k > 0 and self.current is not None:
            x, y = self.current
            pick = torch.randint(len(y), (k,), generator=self.generator)
            parts.append((x[pick], y[pick]))
        if n - k > 0 and len(self.buffer) > 0:
            parts.append(self.buffer.sample(n - k, self.generator))
        if not parts:
            return None
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def before_training(self, model: nn.Module) -> nn.Module:
        self.head = AsymmetricHead(model)
        return self.head

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.head is None:
            raise RuntimeError("ERACE.batch called before before_training")
        incoming = len(x)
        n = round(self.ratio * incoming)
        drawn = self.memory(n) if n > 0 else None
        if drawn is not None:
            xr, yr = drawn
            x = torch.cat([x, xr.to(x.device, x.dtype)])
            y = torch.cat([y, yr.to(y.device, y.dtype)])
        self.head.rows = (y, incoming)
        return x, y
