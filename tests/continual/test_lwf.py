"""Learning without Forgetting's distillation term."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from fedrobust.continual import LwF, MaskedHead, distillation_loss
from fedrobust.train import local_train
from fedrobust.train.config import TrainConfig


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 5))


def test_distillation_zero_for_equal_logits_positive_otherwise() -> None:
    logits = torch.randn(6, 5)
    assert torch.equal(distillation_loss(logits, logits.clone(), 2.0), torch.zeros(6))
    other = logits + torch.randn(6, 5)
    assert (distillation_loss(other, logits, 2.0) > 0).all()
    # a constant shift of the logits leaves the softmax, hence the divergence, unchanged
    shifted = distillation_loss(logits + 3.0, logits, 2.0)
    torch.testing.assert_close(shifted, torch.zeros(6), atol=1e-6, rtol=0)


def test_lwf_term_zero_when_model_unchanged_positive_otherwise() -> None:
    old = _model(0)
    plugin = LwF(old, temperature=2.0, alpha=0.5)
    x, y = torch.randn(8, 4), torch.zeros(8, dtype=torch.long)
    assert plugin.batch(x, y) == (x, y)
    base = torch.tensor(1.25)
    same = plugin.loss(copy.deepcopy(old), base)
    assert float(same.detach()) == 1.25
    changed = plugin.loss(_model(1), base)
    assert float(changed.detach()) > 1.25
    # a per-example loss (DP-SGD's reduction="none") gets each example's term
    per_example = plugin.loss(_model(1), torch.zeros(8))
    assert per_example.shape == (8,) and (per_example > 0).all()
    assert float(per_example.detach().mean()) == pytest.approx(
        float(changed.detach()) - 1.25, rel=1e-5
    )
    # the term has a gradient, pulling the new model towards the old outputs
    new = _model(1)
    plugin.loss(new, base).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in new.parameters())
    # the old model was copied and frozen; the argument keeps its state
    assert all(p.requires_grad for p in old.parameters())


def test_lwf_restricted_classes_masked_head_and_edge_cases() -> None:
    old = _model(0)
    new = _model(1)
    x = torch.randn(8, 4)
    plugin = LwF(old, temperature=2.0, alpha=1.0, classes=[0, 1])
    plugin.batch(x, torch.zeros(8, dtype=torch.long))
    restricted = plugin.loss(new, torch.tensor(0.0))
    with torch.no_grad():
        expected = 4.0 * distillation_loss(new(x)[:, :2], old(x)[:, :2], 2.0).mean()
    torch.testing.assert_close(restricted.detach(), expected)
    # a MaskedHead's wrapped model is distilled, not its masked logits
    masked = plugin.loss(MaskedHead(new, [3, 4]), torch.tensor(0.0))
    torch.testing.assert_close(masked.detach(), expected)

    with pytest.raises(RuntimeError, match="before"):
        LwF(old).loss(new, torch.tensor(0.0))
    empty = LwF(old)
    empty.batch(x[:0], torch.zeros(0, dtype=torch.long))
    assert float(empty.loss(new, torch.tensor(0.5)).detach()) == 0.5
    with pytest.raises(ValueError):
        LwF(old, temperature=0.0)


def test_lwf_in_local_train_keeps_outputs_near_the_old_model() -> None:
    x = torch.randn(96, 4, generator=torch.Generator().manual_seed(0)).numpy()
    y = (x[:, 0] > 0).astype("int64") + 2  # a new task on classes 2 and 3
    cfg = TrainConfig(local_epochs=5, batch_size=16)
    old = _model(0)

    def divergence(model: nn.Module) -> float:
        inputs = torch.from_numpy(x)
        with torch.no_grad():
            return float(distillation_loss(model(inputs), old(inputs), 2.0).mean())

    free = copy.deepcopy(old)
    local_train(free, x, y, train=cfg, num_classes=5, seed=0)
    kept = copy.deepcopy(old)
    plugin = LwF(old, temperature=2.0, alpha=5.0, classes=[0, 1])
    local_train(kept, x, y, train=cfg, num_classes=5, seed=0, plugins=(plugin,))
    assert divergence(kept) < divergence(free)
