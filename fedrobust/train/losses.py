"""Classification losses, some robust to label noise; registry with ``create_loss``.

Every loss maps (logits, targets) to a scalar mean, and accepts per-class ``weight``
(for ``train.class_weights: balanced``).
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


def _weighted_mean(
    per_sample: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None
) -> torch.Tensor:
    if weight is None:
        return per_sample.mean()
    w = weight[targets]
    return (per_sample * w).sum() / w.sum()


@register_loss("cross_entropy")
def _cross_entropy(weight: torch.Tensor | None = None) -> nn.Module:
    return nn.CrossEntropyLoss(weight=weight)


@register_loss("label_smoothing")
def _label_smoothing(weight: torch.Tensor | None = None, smoothing: float = 0.1) -> nn.Module:
    """Cross-entropy against targets smoothed by ``smoothing`` (Szegedy et al. 2016)."""
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing)


class GeneralizedCrossEntropy(nn.Module):
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
        super().__init__()
        self.q = q
        self.weight = weight

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p_y = F.softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1).clamp_min(1e-7)
        return _weighted_mean((1 - p_y**self.q) / self.q, targets, self.weight)


class SymmetricCrossEntropy(nn.Module):
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
        super().__init__()
        self.alpha, self.beta, self.weight = alpha, beta, weight

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, targets, reduction="none")
        probs = F.softmax(logits, dim=1).clamp(1e-7, 1.0)
        one_hot = (
            F.one_hot(targets, logits.shape[1]).float().clamp_min(1e-4)
        )  # log(1e-4) = A = -4 (paper)
        rce = -(probs * one_hot.log()).sum(1)
        return _weighted_mean(self.alpha * ce + self.beta * rce, targets, self.weight)


class FocalLoss(nn.Module):
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
        super().__init__()
        self.gamma, self.weight = gamma, weight

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
        return _weighted_mean(-((1 - log_p.exp()) ** self.gamma) * log_p, targets, self.weight)


@register_loss("gce")
def _gce(weight: torch.Tensor | None = None, q: float = 0.7) -> nn.Module:
    return GeneralizedCrossEntropy(q=q, weight=weight)


@register_loss("sce")
def _sce(weight: torch.Tensor | None = None, alpha: float = 0.1, beta: float = 1.0) -> nn.Module:
    return SymmetricCrossEntropy(alpha=alpha, beta=beta, weight=weight)


@register_loss("focal")
def _focal(weight: torch.Tensor | None = None, gamma: float = 2.0) -> nn.Module:
    return FocalLoss(gamma=gamma, weight=weight)
