"""EWC: the Fisher diagonal, the penalty, online merging and state."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord
from torch import nn

from fedrobust.continual import EWC, MaskedHead, fisher_diagonal, merge_fisher, snapshot
from fedrobust.train import local_train
from fedrobust.train.config import TrainConfig


def _linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def _hand_fisher(model: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Cross-entropy gradients of a linear model: dW = (p - e_y) x^T, db = p - e_y."""
    with torch.no_grad():
        p = F.softmax(x @ model.weight.T + model.bias, dim=1)
    residual = p - F.one_hot(y, 2).float()
    grad_w = residual[:, :, None] * x[:, None, :]
    return [grad_w.pow(2).mean(0), residual.pow(2).mean(0)]


@pytest.mark.parametrize("method", ["vmap", "loop"])
def test_fisher_matches_hand_computation(method: str) -> None:
    model = _linear()
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    fisher = fisher_diagonal(model, x, y, method=method, chunk_size=3)
    expected = _hand_fisher(model, x, y)
    assert [f.shape for f in fisher] == [p.shape for p in model.parameters()]
    for got, want in zip(fisher, expected, strict=True):
        torch.testing.assert_close(got, want)
    # numpy inputs, and a random subset of the examples
    subset = fisher_diagonal(model, x.numpy(), y.numpy(), samples=3, seed=4, method=method)
    rows = torch.randperm(7, generator=torch.Generator().manual_seed(4))[:3]
    for got, want in zip(subset, _hand_fisher(model, x[rows], y[rows]), strict=True):
        torch.testing.assert_close(got, want)


def test_fisher_restores_training_mode() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2)).train()
    fisher_diagonal(model, torch.randn(5, 3), torch.zeros(5, dtype=torch.long))
    assert model.training


def _value(penalty: torch.Tensor | None) -> float:
    assert penalty is not None
    return float(penalty.detach())


def _moved(anchor: list[torch.Tensor], direction: list[torch.Tensor], t: float) -> nn.Linear:
    model = _linear()
    with torch.no_grad():
        for p, a, d in zip(model.parameters(), anchor, direction, strict=True):
            p.copy_(a + t * d)
    return model


def test_penalty_zero_at_anchor_and_grows_along_a_line() -> None:
    anchor = snapshot(_linear())
    fisher = [torch.rand_like(a) + 0.1 for a in anchor]
    direction = [torch.randn_like(a) for a in anchor]
    ewc = EWC(fisher, anchor, lam=3.0)
    assert _value(ewc.penalty(_moved(anchor, direction, 0.0))) == 0.0
    values = [_value(ewc.penalty(_moved(anchor, direction, t))) for t in (0.25, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    exact = 1.5 * sum(float((f * d**2).sum()) for f, d in zip(fisher, direction, strict=True))
    assert values[2] == pytest.approx(exact, rel=1e-5)
    assert values[3] == pytest.approx(4 * exact, rel=1e-5)  # quadratic
    assert EWC(fisher, anchor, lam=0.0).penalty(_moved(anchor, direction, 1.0)) is None


def test_penalty_is_weighted_by_fisher() -> None:
    anchor = snapshot(_linear())
    direction = [torch.zeros_like(anchor[0]), torch.ones_like(anchor[1])]  # move the bias only
    moved = _moved(anchor, direction, 1.0)
    weight_only = [torch.ones_like(anchor[0]), torch.zeros_like(anchor[1])]
    assert _value(EWC(weight_only, anchor, lam=1.0).penalty(moved)) == 0.0
    bias = [torch.zeros_like(anchor[0]), torch.tensor([1.0, 3.0])]
    assert _value(EWC(bias, anchor, lam=1.0).penalty(moved)) == pytest.approx(0.5 * 4.0)
    double = [2 * f for f in bias]
    assert _value(EWC(double, anchor, lam=1.0).penalty(moved)) == pytest.approx(4.0)
    assert _value(EWC(bias, anchor, lam=1.0).penalty(MaskedHead(moved, [0]))) == pytest.approx(2.0)


def test_penalty_holds_weights_in_local_train() -> None:
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0)).numpy()
    y = (x[:, 0] > 0).astype("int64")
    cfg = TrainConfig(local_epochs=3, batch_size=16)
    free = _linear()
    local_train(free, x, y, train=cfg, num_classes=2, seed=0)
    held = _linear()
    anchor = snapshot(held)
    ewc = EWC([torch.full_like(a, 100.0) for a in anchor], anchor, lam=1.0)
    local_train(held, x, y, train=cfg, num_classes=2, seed=0, plugins=(ewc,))

    def drift(model: nn.Module) -> float:
        pairs = zip(model.parameters(), anchor, strict=True)
        return sum(float((p.detach() - a).abs().sum()) for p, a in pairs)

    assert drift(held) < 0.1 * drift(free)


def test_online_merge_and_state_round_trip() -> None:
    old = [torch.tensor([1.0, 2.0]), torch.tensor([[4.0]])]
    new = [torch.tensor([0.5, 0.5]), torch.tensor([[1.0]])]
    merged = merge_fisher(old, new, decay=0.5)
    assert [m.tolist() for m in merged] == [[1.0, 1.5], [[3.0]]]
    with pytest.raises(ValueError):
        merge_fisher(old, new, decay=1.5)

    ewc = EWC(old, [torch.zeros(2), torch.zeros(1, 1)], lam=2.0)
    ewc.consolidate(new, [torch.ones(2), torch.ones(1, 1)], decay=0.5)
    assert [f.tolist() for f in ewc.fisher] == [[1.0, 1.5], [[3.0]]]
    assert [a.tolist() for a in ewc.anchor] == [[1.0, 1.0], [[1.0]]]

    record = ArrayRecord(ewc.state_dict())
    restored = EWC([], [], lam=2.0)
    restored.load_state_dict(record.to_torch_state_dict())
    for a, b in zip(restored.fisher + restored.anchor, ewc.fisher + ewc.anchor, strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="not an EWC state"):
        restored.load_state_dict({"fisher.0": torch.zeros(1)})


def test_the_true_fisher_samples_labels_from_the_model_and_differs_from_the_empirical() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.randn(64, 4)
    y = torch.zeros(64, dtype=torch.long)  # labels the untrained model does not predict
    empirical = fisher_diagonal(model, x, y, seed=1)
    true = fisher_diagonal(model, x, y, seed=1, kind="true")
    again = fisher_diagonal(model, x, y, seed=1, kind="true")
    assert all(torch.equal(a, b) for a, b in zip(true, again, strict=True))  # seeded
    assert not all(torch.allclose(a, b) for a, b in zip(true, empirical, strict=True))
    # the true Fisher does not read the labels at all
    other = fisher_diagonal(model, x, torch.full((64,), 2), seed=1, kind="true")
    assert all(torch.equal(a, b) for a, b in zip(true, other, strict=True))
