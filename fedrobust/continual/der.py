"""Dark experience replay: match the logits the buffer stored with its examples.

Buzzega et al. 2020, "Dark Experience for General Continual Learning: a Strong, Simple
Baseline", https://arxiv.org/abs/2004.07211. DER adds ``alpha * MSE(f(x'), z')`` on a
buffer batch ``(x', z')`` (``z'``: the logits stored with ``x'``); DER++ also adds
``beta * CE(f(x''), y'')`` on a second, independent buffer batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fedrobust.continual.replay import ReservoirBuffer
from fedrobust.train.plugins import TrainPlugin


def der_loss(
    model: nn.Module,
    logits_batch: tuple[torch.Tensor, torch.Tensor],
    label_batch: tuple[torch.Tensor, torch.Tensor] | None,
    alpha: float,
    beta: float,
) -> torch.Tensor:
    """The DER / DER++ term of one step.

    Parameters
    ----------
    model : nn.Module
        The network being trained.
    logits_batch : (torch.Tensor, torch.Tensor)
        Buffer inputs and the logits stored with them.
    label_batch : (torch.Tensor, torch.Tensor), optional
        A second buffer batch, inputs and labels (DER++; ``None`` for DER).
    alpha, beta : float
        Weights of the logit-matching (mean squared error over every logit) and of the
        cross-entropy term.

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    x, z = logits_batch
    term = alpha * F.mse_loss(model(x).float(), z.to(torch.float32))
    if label_batch is not None and beta > 0:
        xl, yl = label_batch
        term = term + beta * F.cross_entropy(model(xl).float(), yl)
    return term


class DarkReplay(TrainPlugin):
    """Adds the DER (``beta=0``) or DER++ term of a freshly drawn buffer batch to each step.

    Parameters
    ----------
    buffer : ReservoirBuffer
        The memory, storing logits (``buffer.add(x, y, logits)``); the plugin only reads it.
    alpha : float
        Weight of the logit-matching term.
    beta : float
        Weight of the buffer's cross-entropy (DER++; 0: DER).
    ratio : float
        Buffer examples drawn per current example (each term its own draw; at least one).
    seed : int
        Seeds the draws.

    Notes
    -----
    ``local_train`` hands the ``loss`` hook the network, not the logits, so the buffer
    batches take their own forward passes (as the paper's implementation does). The term
    is a scalar added to the batch's mean loss; it is not defined per example, so DP-SGD
    is refused with it (as with every continual method).
    """

    def __init__(
        self, buffer: ReservoirBuffer, alpha: float, beta: float, ratio: float, seed: int
    ) -> None:
        if alpha < 0 or beta < 0:
            raise ValueError(f"DER weights must be >= 0, got alpha={alpha}, beta={beta}")
        self.buffer = buffer
        self.alpha = alpha
        self.beta = beta
        self.ratio = ratio
        self.generator = torch.Generator().manual_seed(seed)
        self.size = 0

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.size = len(x)
        return x, y

    def loss(self, model: nn.Module, loss: torch.Tensor) -> torch.Tensor:
        if len(self.buffer) == 0 or self.size == 0:
            return loss
        n = max(1, round(self.ratio * self.size))
        device = next(model.parameters()).device
        x, _, z = self.buffer.sample_logits(n, self.generator)
        labelled = None
        if self.beta > 0:
            xl, yl = self.buffer.sample(n, self.generator)
            labelled = (xl.to(device), yl.to(device))
        term = der_loss(model, (x.to(device), z.to(device)), labelled, self.alpha, self.beta)
        return loss + term
