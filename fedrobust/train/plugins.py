"""Plugins for the local training loop: hooks take values and return values.

A plugin never reaches into the loop's state; the loop passes it what it needs.
"""

from __future__ import annotations

import torch
from torch import nn

from fedrobust.data.augment import AugmentOp, apply_op


class TrainPlugin:
    """Hooks into the local loop; each returns what it was given, possibly changed."""

    def before_training(self, model: nn.Module) -> nn.Module:
        """Called once before the first batch (e.g. to snapshot global weights)."""
        return model

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Transform a training batch (augmentation, adversarial examples)."""
        return x, y

    def loss(self, model: nn.Module, loss: torch.Tensor) -> torch.Tensor:
        """Change the batch's data loss (a term that depends on the batch)."""
        return loss

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """A term of the weights alone, added to the loss (proximal term, L1, EWC).

        Under DP-SGD its gradient joins the privatised gradient after clipping and
        noise, so it must not depend on the training data.
        """
        return None


class ProximalTerm(TrainPlugin):
    """FedProx: adds ``mu / 2 * ||w - w_global||^2`` to each batch loss.

    Li et al. 2020, https://arxiv.org/abs/1812.06127

    Parameters
    ----------
    mu : float
        Weight of the proximal term.
    anchor : list[torch.Tensor], optional
        The weights to stay near, in ``model.parameters()`` order; default: the model's
        own weights when training starts (the global model it received). Ditto's personal
        model gives the received global weights while it starts from its own.
    """

    def __init__(self, mu: float, anchor: list[torch.Tensor] | None = None) -> None:
        self.mu = mu
        self.fixed = anchor is not None
        self.anchor: list[torch.Tensor] = list(anchor or [])

    def before_training(self, model: nn.Module) -> nn.Module:
        if not self.fixed:
            self.anchor = [p.detach().clone() for p in model.parameters()]
        else:  # onto the device the model trains on
            pairs = zip(self.anchor, model.parameters(), strict=True)
            self.anchor = [a.to(p.device) for a, p in pairs]
        return model

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        if self.mu == 0:
            return None
        distance = sum(
            torch.sum((p - a) ** 2) for p, a in zip(model.parameters(), self.anchor, strict=True)
        )
        return 0.5 * self.mu * distance


class Augment(TrainPlugin):
    """Applies the scenario's ``data.augment`` ops, in order, to each training batch.

    Parameters
    ----------
    ops : list
        The augmentation configs.
    seed : int
        Seeds the random draws.
    """

    def __init__(self, ops: list[AugmentOp], seed: int) -> None:
        self.ops = ops
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4:
            raise ValueError("data.augment needs image inputs (N, C, H, W)")
        if len(x) == 0:  # an empty Poisson batch (DP-SGD): nothing to transform
            return x, y
        for op in self.ops:
            x = apply_op(x, op, self.generator)
        return x, y


class L1Penalty(TrainPlugin):
    """Adds ``weight * sum |w|`` over weight matrices and kernels (not biases or norms).

    Parameters
    ----------
    weight : float
        Strength of the penalty (``train.l1``).
    """

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        return self.weight * sum(p.abs().sum() for p in model.parameters() if p.dim() > 1)
