"""Pseudo-labelling and FixMatch: which predictions become targets, and on which view."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fedrobust.semisup import methods
from fedrobust.semisup.config import SemiSupervisedConfig
from fedrobust.semisup.methods import (
    SemiSupervisedTerm,
    UnlabeledBatches,
    fixmatch_loss,
    pseudo_label_loss,
)


def test_only_predictions_above_the_threshold_become_targets() -> None:
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.2, 0.1], [0.0, 0.0, 5.0]])
    loss, mask = pseudo_label_loss(logits, threshold=0.9)
    assert mask.tolist() == [1.0, 0.0, 1.0]  # softmax max: 0.96, 0.37, 0.99
    expected = (
        F.cross_entropy(logits[0:1], torch.tensor([0]))
        + F.cross_entropy(logits[2:3], torch.tensor([2]))
    ) / 3  # averaged over the whole batch, masked ones counting 0
    assert torch.allclose(loss, expected)


def test_threshold_zero_keeps_every_prediction() -> None:
    logits = torch.tensor([[0.0, 0.1], [0.3, 0.0]])
    loss, mask = pseudo_label_loss(logits, threshold=0.0)
    assert mask.tolist() == [1.0, 1.0]
    assert torch.allclose(loss, F.cross_entropy(logits, torch.tensor([1, 0])))


class _Lookup(nn.Module):
    """A deterministic model: the logits are the first pixels of each image."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x.flatten(1)[:, :3]


def test_fixmatch_targets_the_weak_views_argmax_on_the_strong_view() -> None:
    model = _Lookup()
    weak = torch.zeros(2, 1, 1, 3)
    weak[0, 0, 0] = torch.tensor([9.0, 0.0, 0.0])  # confident: class 0
    weak[1, 0, 0] = torch.tensor([0.0, 0.1, 0.0])  # unsure: masked out
    strong = torch.zeros(2, 1, 1, 3)
    strong[0, 0, 0] = torch.tensor([0.0, 3.0, 0.0])  # the strong view predicts class 1
    strong[1, 0, 0] = torch.tensor([0.0, 0.0, 8.0])
    loss, mask = fixmatch_loss(model, weak, strong, threshold=0.95)
    assert mask.tolist() == [1.0, 0.0]
    expected = F.cross_entropy(torch.tensor([[0.0, 3.0, 0.0]]), torch.tensor([0])) / 2
    assert torch.allclose(loss, expected)
    loss.backward()  # the gradient flows through the strong view only
    strong_grad = torch.autograd.grad(
        F.cross_entropy(model(strong[:1]), torch.tensor([0])) / 2, model.scale
    )[0]
    assert torch.allclose(model.scale.grad, strong_grad)


def _cfg(**fields: object) -> SemiSupervisedConfig:
    return SemiSupervisedConfig(**{"method": "pseudo_label", **fields})


def test_the_plugin_adds_zero_when_nothing_passes_the_threshold() -> None:
    model = nn.Linear(4, 10)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)  # uniform predictions: confidence 0.1
    term = SemiSupervisedTerm(_cfg(threshold=0.5), np.ones((8, 4), np.float32), 2, 0, 1)
    base = torch.tensor(1.25, requires_grad=True)
    out = term.loss(model, base)
    assert out.item() == 1.25
    out.backward()
    assert model.weight.grad is None or not model.weight.grad.any()
    assert term.mask_rate() == 0.0


def test_the_plugin_adds_the_weighted_term_on_its_own_batch() -> None:
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[5.0, 0.0], [0.0, 5.0]]))
        model.bias.zero_()
    unlabeled = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
    term = SemiSupervisedTerm(
        _cfg(threshold=0.9, weight=2.0, unlabeled_batch_ratio=3), unlabeled, 1, 0, 1
    )
    out = term.loss(model, torch.tensor(0.0))
    per_example = F.cross_entropy(torch.tensor([[5.0, 0.0]]), torch.tensor([0]))
    assert torch.allclose(out, 2.0 * per_example)  # all 3 confident and right
    assert term.seen == 3 and term.mask_rate() == 1.0


def test_the_weight_ramps_up_over_rounds() -> None:
    cfg = _cfg(weight=3.0, rampup_rounds=4)
    assert [cfg.ramp(r) for r in (1, 3, 5, 9)] == [0.0, 1.5, 3.0, 3.0]
    assert _cfg(weight=3.0).ramp(1) == 3.0
    term = SemiSupervisedTerm(cfg, np.ones((4, 2), np.float32), 2, 0, rnd=1)
    base = torch.tensor(0.5)
    assert term.loss(nn.Linear(2, 2), base) is base and term.seen == 0


def test_fixmatch_plugin_uses_the_two_views(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(methods, "weak_view", lambda x, cfg, g: calls.append("weak") or x)
    monkeypatch.setattr(methods, "strong_view", lambda x, cfg, g: calls.append("strong") or -x)
    seen: list[torch.Tensor] = []

    class Spy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x)
            return torch.zeros(len(x), 2)

    cfg = SemiSupervisedConfig(method="fixmatch", unlabeled_batch_ratio=1)
    term = SemiSupervisedTerm(cfg, np.ones((4, 1, 2, 2), np.float32), 2, 0, 1)
    term.loss(Spy(), torch.tensor(0.0))
    assert calls == ["weak", "strong"]
    assert seen[0].sum() > 0 and seen[1].sum() < 0  # weak first (targets), then strong


def test_unlabelled_batches_are_seeded_and_cycle_through_every_input() -> None:
    x = np.arange(5, dtype=np.float32).reshape(5, 1)
    a, b = UnlabeledBatches(x, 3, seed=7), UnlabeledBatches(x, 3, seed=7)
    drawn = [a.next() for _ in range(5)]
    assert all(torch.equal(d, b.next()) for d in drawn)
    assert all(len(d) == 3 for d in drawn)
    first_pass = torch.cat(drawn)[:5].flatten().sort().values
    assert torch.equal(first_pass, torch.arange(5.0))  # each input once per pass
    assert math.isnan(SemiSupervisedTerm(_cfg(), x, 1, 0, 1).mask_rate())
