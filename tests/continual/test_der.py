"""Dark experience replay: the DER and DER++ terms against hand-computed values."""

from __future__ import annotations

import math

import torch
from torch import nn

from fedrobust.continual.der import DarkReplay, der_loss
from fedrobust.continual.replay import ReservoirBuffer


def _identity(k: int) -> nn.Linear:
    model = nn.Linear(k, k, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(k))
    return model


def test_der_is_alpha_times_the_mean_squared_logit_error_and_its_gradient() -> None:
    model = _identity(2)
    x, z = torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2)
    term = der_loss(model, (x, z), None, alpha=0.4, beta=0.0)
    assert math.isclose(float(term.detach()), 0.4 * (1 + 4) / 2, rel_tol=1e-6)  # 1.0
    term.backward()
    # d/dW alpha * mean((Wx - z)^2) = alpha * 2/2 * (Wx - z) x^T
    torch.testing.assert_close(model.weight.grad, torch.tensor([[0.4, 0.8], [0.8, 1.6]]))


def test_derpp_adds_beta_times_the_buffer_cross_entropy() -> None:
    model = _identity(2)
    x = torch.tensor([[1.0, 2.0]])
    term = der_loss(model, (x, torch.zeros(1, 2)), (x, torch.tensor([1])), 0.4, 0.5)
    ce = math.log(1 + math.exp(-1))  # -log softmax([1, 2])[1]
    assert math.isclose(float(term.detach()), 1.0 + 0.5 * ce, rel_tol=1e-6)


def test_plugin_adds_the_term_of_a_buffer_batch_to_the_step_loss() -> None:
    buffer = ReservoirBuffer(capacity=1, seed=0)
    buffer.add(torch.tensor([[1.0, 2.0]]), torch.tensor([1]), logits=torch.zeros(1, 2))
    model = _identity(2)
    der = DarkReplay(buffer, alpha=0.4, beta=0.5, ratio=1.0, seed=0)
    x, y = der.batch(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))
    assert len(x) == 3  # DER does not append the buffer to the batch
    loss = der.loss(model, torch.tensor(2.0))
    assert math.isclose(
        float(loss.detach()), 2.0 + 1.0 + 0.5 * math.log(1 + math.exp(-1)), rel_tol=1e-6
    )
    empty = DarkReplay(ReservoirBuffer(capacity=1, seed=0), 0.4, 0.0, 1.0, 0)
    empty.batch(x, y)
    assert float(empty.loss(model, torch.tensor(2.0))) == 2.0
