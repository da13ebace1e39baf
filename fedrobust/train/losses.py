"""Classification losses, some robust to label noise; registry with ``create_loss``.

Every loss maps (logits, targets) to a scalar mean, and accepts per-class ``weight``
(for ``train.class_weights: balanced``). Like torch's losses, each has a ``reduction``
attribute: ``"none"`` gives the per-example losses (Opacus's ghost clipping needs them).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from fedrobust.registry import Registry

LossFactory = Callable[..., nn.Module]
LOSSES: Registry[LossFactory] = Registry("loss", "train.loss.name")


def register_loss(name: str) -> Callable[[LossFactory], LossFactory]:
    """Register ``factory(weight=None, **params) -> nn.Module`` under ``name``."""
    return LOSSES.register(name)


def known_losses() -> list[str]:
    """Registered loss names, sorted."""
    return LOSSES.names()


def create_loss(name: str, weight: torch.Tensor | None = None, **params: float) -> nn.Module:
    """Build the registered loss ``name``; unknown names list the known ones."""
    return LOSSES.get(name)(weight=weight, **params)


class PerExampleLoss(nn.Module):
    """A loss computed per example, then reduced as ``self.reduction`` says.

    ``"mean"`` is the (class-weighted) mean; ``"none"`` returns each example's loss times
    its class weight, as ``nn.CrossEntropyLoss(reduction="none")`` does.
    """

    def __init__(self, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.weight = weight
        self.reduction = "mean"

    def per_example(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        per_sample = self.per_example(logits, targets)
        w = None if self.weight is None else self.weight[targets]
        if self.reduction == "none":
            return per_sample if w is None else per_sample * w
        if w is None:
            return per_sample.mean()
        return (per_sample * w).sum() / w.sum()


@register_loss("cross_entropy")
def _cross_entropy(weight: torch.Tensor | None = None) -> nn.Module:
    return nn.CrossEntropyLoss(weight=weight)


@register_loss("label_smoothing")
def _label_smoothing(weight: torch.Tensor | None = None, smoothing: float = 0.1) -> nn.Module:
    """Cross-entropy against targets smoothed by ``smoothing`` (Szegedy et al. 2016)."""
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing)


class GeneralizedCrossEntropy(PerExampleLoss):
    """GCE: ``(1 - p_y^q) / q``; q -> 0 is cross-entropy, q = 1 is MAE.

    Zhang & Sabuncu 2018, https://arxiv.org/abs/1805.07836

    Parameters
    ----------
    q : float
        In (0, 1]; larger is more robust to noisy labels and slower to fit.
    weight : torch.Tensor, optional
        Per-class weights.
    """

    def __init__(self, q: float = 0.7, weight: torch.Tensor | None = None) -> None:
        super().__init__(weight)
        self.q = q

    def per_example(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p_y = F.softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1).clamp_min(1e-7)
        return (1 - p_y**self.q) / self.q


class SymmetricCrossEntropy(PerExampleLoss):
    """SCE: ``alpha * CE + beta * RCE``, RCE the reverse cross-entropy with log 0 := A.

    Wang et al. 2019, https://arxiv.org/abs/1908.06112

    Parameters
    ----------
    alpha, beta : float
        Weights of the cross-entropy and reverse cross-entropy terms.
    weight : torch.Tensor, optional
        Per-class weights.
    """

    def __init__(
        self, alpha: float = 0.1, beta: float = 1.0, weight: torch.Tensor | None = None
    ) -> None:
        super().__init__(weight)
        self.alpha, self.beta = alpha, beta

    def per_example(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, targets, reduction="none")
        probs = F.softmax(logits, dim=1).clamp(1e-7, 1.0)
        one_hot = (
            F.one_hot(targets, logits.shape[1]).float().clamp_min(1e-4)
        )  # log(1e-4) = A = -4 (paper)
        rce = -(probs * one_hot.log()).sum(1)
        return self.alpha * ce + self.beta * rce


class FocalLoss(PerExampleLoss):
    """Focal loss: ``(1 - p_y)^gamma * CE``; down-weights easy examples.

    Lin et al. 2017, https://arxiv.org/abs/1708.02002

    Parameters
    ----------
    gamma : float
        Focusing parameter; 0 is cross-entropy.
    weight : torch.Tensor, optional
        Per-class weights.
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None) -> None:
        super().__init__(weight)
        self.gamma = gamma

    def per_example(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
        return -((1 - log_p.exp()) ** self.gamma) * log_p


@register_loss("gce")
def _gce(weight: torch.Tensor | None = None, q: float = 0.7) -> nn.Module:
    return GeneralizedCrossEntropy(q=q, weight=weight)


@register_loss("sce")
def _sce(weight: torch.Tensor | None = None, alpha: float = 0.1, beta: float = 1.0) -> nn.Module:
    return SymmetricCrossEntropy(alpha=alpha, beta=beta, weight=weight)


@register_loss("focal")
def _focal(weight: torch.Tensor | None = None, gamma: float = 2.0) -> nn.Module:
    return FocalLoss(gamma=gamma, weight=weight)
