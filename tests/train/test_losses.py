"""Losses: known special cases and the registry's errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fedrobust.errors import FedrobustError
from fedrobust.train.losses import create_loss, known_losses

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0]])
TARGETS = torch.tensor([0, 2, 1])


def test_focal_with_gamma_0_is_cross_entropy() -> None:
    focal = create_loss("focal", gamma=0.0)(LOGITS, TARGETS)
    assert focal.item() == pytest.approx(F.cross_entropy(LOGITS, TARGETS).item(), rel=1e-6)


def test_gce_with_q_1_is_mean_absolute_error_on_the_true_class() -> None:
    p_y = F.softmax(LOGITS, 1)[torch.arange(3), TARGETS]
    assert create_loss("gce", q=1.0)(LOGITS, TARGETS).item() == pytest.approx(
        (1 - p_y).mean().item()
    )


def test_sce_is_alpha_ce_plus_beta_reverse_ce() -> None:
    probs = F.softmax(LOGITS, 1)
    rce = (-probs * torch.log(F.one_hot(TARGETS, 3).float().clamp_min(1e-4))).sum(1).mean()
    expected = 0.5 * F.cross_entropy(LOGITS, TARGETS) + 2.0 * rce
    assert create_loss("sce", alpha=0.5, beta=2.0)(LOGITS, TARGETS).item() == pytest.approx(
        expected.item(), rel=1e-5
    )


def test_class_weights_shift_the_loss_towards_weighted_classes() -> None:
    weight = torch.tensor([0.0, 0.0, 1.0])  # only class 2 counts
    # label_smoothing follows PyTorch: the weight also scales the smoothed mass per class
    for name in set(known_losses()) - {"label_smoothing"}:
        loss = create_loss(name, weight=weight)(LOGITS, TARGETS).item()
        only_two = create_loss(name)(LOGITS[1:2], TARGETS[1:2]).item()
        assert loss == pytest.approx(only_two, rel=1e-5), name


def test_unknown_loss_names_the_field_and_the_known_ones() -> None:
    with pytest.raises(FedrobustError) as info:
        create_loss("huber")
    assert info.value.where == "train.loss.name"
    assert "gce" in info.value.what and "focal" in info.value.what
