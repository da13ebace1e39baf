"""The local training loop."""

from __future__ import annotations

import numpy as np
import torch

from fedrobust.data import build_federation
from fedrobust.models import InputSpec, create_model
from fedrobust.scenario import DataConfig, OptimizerConfig, PartitionConfig
from fedrobust.train import ProximalTerm, evaluate, local_train


def _digits_client() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    fed = build_federation(
        DataConfig(dataset="digits", partition=PartitionConfig(num_clients=2)), 0
    )
    return fed.clients[0].x_train, fed.clients[0].y_train, fed.x_test, fed.y_test


def _train(seed: int, epochs: int = 3, plugins: tuple = ()) -> tuple[torch.nn.Module, object]:
    x, y, _, _ = _digits_client()
    torch.manual_seed(0)
    model = create_model("cnn", InputSpec((1, 8, 8), 10))
    result = local_train(
        model, x, y, epochs=epochs, batch_size=32, optimizer=OptimizerConfig(), seed=seed,
        plugins=plugins,
    )  # fmt: skip
    return model, result


def test_local_training_learns_digits() -> None:
    _, _, x_test, y_test = _digits_client()
    model, result = _train(seed=1)
    _, acc = evaluate(model, x_test, y_test)
    assert acc > 0.85
    assert result.num_examples == len(_digits_client()[1])
    assert result.steps == 3 * -(-result.num_examples // 32)


def test_same_seed_same_weights_other_seed_differs() -> None:
    a, _ = _train(seed=5, epochs=1)
    b, _ = _train(seed=5, epochs=1)
    c, _ = _train(seed=6, epochs=1)
    pairs = list(
        zip(a.state_dict().values(), b.state_dict().values(), c.state_dict().values(), strict=True)
    )
    assert all(torch.equal(pa, pb) for pa, pb, _ in pairs)
    assert not all(torch.equal(pa, pc) for pa, _, pc in pairs)


def test_proximal_term_is_zero_at_the_anchor_and_pulls_towards_it() -> None:
    model = create_model("mlp", InputSpec((4,), 2))
    term = ProximalTerm(mu=0.5)
    term.before_training(model)
    zero = torch.tensor(0.0)
    assert term.loss(model, zero).item() == 0.0
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    moved = term.loss(model, zero).item()
    assert moved == 0.5 * 0.5 * next(model.parameters()).numel()

    free, _ = _train(seed=2, epochs=2)
    held, _ = _train(seed=2, epochs=2, plugins=(ProximalTerm(mu=10.0),))
    torch.manual_seed(0)
    start = create_model("cnn", InputSpec((1, 8, 8), 10))

    def drift(model: torch.nn.Module) -> float:
        return sum(
            float(((p - q) ** 2).sum())
            for p, q in zip(model.parameters(), start.parameters(), strict=True)
        )

    assert drift(held) < drift(free)
