"""The one local-training code path, shared by simulation and edge clients.

``local_train`` runs ``epochs`` passes of mini-batch SGD/Adam over the client's
data. Extra terms (FedProx today; DP, adversarial examples and continual-learning
penalties in later issues) come in as :class:`TrainPlugin` objects whose hooks take
values and return values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedrobust.scenario import OptimizerConfig


class TrainPlugin:
    """Hooks into the local loop; each returns what it was given, possibly changed."""

    def before_training(self, model: nn.Module) -> nn.Module:
        """Called once before the first batch (e.g. to snapshot global weights)."""
        return model

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Transform a training batch (augmentation, adversarial examples)."""
        return x, y

    def loss(self, model: nn.Module, loss: torch.Tensor) -> torch.Tensor:
        """Add a term to the batch loss (proximal term, EWC penalty)."""
        return loss


class ProximalTerm(TrainPlugin):
    """FedProx: adds ``mu / 2 * ||w - w_global||^2`` to each batch loss.

    Li et al. 2020, https://arxiv.org/abs/1812.06127

    Parameters
    ----------
    mu : float
        Weight of the proximal term.
    """

    def __init__(self, mu: float) -> None:
        self.mu = mu
        self.anchor: list[torch.Tensor] = []

    def before_training(self, model: nn.Module) -> nn.Module:
        self.anchor = [p.detach().clone() for p in model.parameters()]
        return model

    def loss(self, model: nn.Module, loss: torch.Tensor) -> torch.Tensor:
        if self.mu == 0:
            return loss
        penalty = sum(
            torch.sum((p - a) ** 2) for p, a in zip(model.parameters(), self.anchor, strict=True)
        )
        return loss + 0.5 * self.mu * penalty


@dataclass(frozen=True)
class TrainResult:
    """What one client's local training produced."""

    num_examples: int
    steps: int
    loss: float
    accuracy: float


def make_optimizer(model: nn.Module, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """The client optimizer named in the scenario."""
    if cfg.name == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def local_train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    optimizer: OptimizerConfig,
    seed: int,
    plugins: tuple[TrainPlugin, ...] = (),
) -> TrainResult:
    """Train ``model`` in place on ``(x, y)``.

    Parameters
    ----------
    model : nn.Module
        The model, holding the global weights on entry.
    x, y : np.ndarray
        Training inputs and labels.
    epochs : int
        Passes over the data.
    batch_size : int
        Mini-batch size (the last batch of an epoch may be smaller).
    optimizer : OptimizerConfig
        Which optimizer and its hyper-parameters.
    seed : int
        Seeds the batch order, so a (scenario seed, round, client) triple repeats exactly.
    plugins : tuple[TrainPlugin, ...]
        Loop extensions, applied in order.

    Returns
    -------
    TrainResult
        Examples seen per epoch, optimizer steps, mean training loss and accuracy.
    """
    if len(y) == 0:
        raise ValueError("local_train needs at least one training example")
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.from_numpy(x)
    targets = torch.from_numpy(y)
    opt = make_optimizer(model, optimizer)
    for plugin in plugins:
        model = plugin.before_training(model)
    criterion = nn.CrossEntropyLoss()
    model.train()
    steps, loss_sum, correct, seen = 0, 0.0, 0, 0
    for _ in range(epochs):
        order = torch.randperm(len(targets), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            xb, yb = inputs[batch], targets[batch]
            for plugin in plugins:
                xb, yb = plugin.batch(xb, yb)
            opt.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = criterion(logits, yb)
            for plugin in plugins:
                loss = plugin.loss(model, loss)
            loss.backward()
            opt.step()
            steps += 1
            loss_sum += float(loss.detach()) * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(yb)
    return TrainResult(
        num_examples=len(targets), steps=steps, loss=loss_sum / seen, accuracy=correct / seen
    )


@torch.no_grad()
def evaluate(
    model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512
) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on ``(x, y)``."""
    if len(y) == 0:
        return float("nan"), float("nan")
    model.eval()
    loss_sum, correct = 0.0, 0
    criterion = nn.CrossEntropyLoss(reduction="sum")
    for start in range(0, len(y), batch_size):
        xb = torch.from_numpy(x[start : start + batch_size])
        yb = torch.from_numpy(y[start : start + batch_size])
        logits = model(xb)
        loss_sum += float(criterion(logits, yb))
        correct += int((logits.argmax(1) == yb).sum())
    return loss_sum / len(y), correct / len(y)
