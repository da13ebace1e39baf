"""The local training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedrobust.data import build_federation
from fedrobust.data.config import DataConfig, PartitionConfig
from fedrobust.models import InputSpec, create_model
from fedrobust.models.build import build_model
from fedrobust.models.config import ModelConfig
from fedrobust.train import ProximalTerm, TrainResult, evaluate, local_train
from fedrobust.train.config import TrainConfig


def _digits_client() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    fed = build_federation(
        DataConfig(dataset="digits", partition=PartitionConfig(num_clients=2)), 0
    )
    return fed.clients[0].x_train, fed.clients[0].y_train, fed.x_test, fed.y_test


def _train(
    seed: int, epochs: int = 4, plugins: tuple = (), **train: object
) -> tuple[torch.nn.Module, TrainResult]:
    x, y, _, _ = _digits_client()
    torch.manual_seed(0)
    model = create_model("cnn", InputSpec((1, 8, 8), 10))
    cfg = TrainConfig(local_epochs=epochs, batch_size=32, **train)
    result = local_train(model, x, y, train=cfg, num_classes=10, seed=seed, plugins=plugins)
    return model, result


def test_local_training_learns_digits() -> None:
    _, _, x_test, y_test = _digits_client()
    model, result = _train(seed=1)
    assert evaluate(model, x_test, y_test).accuracy > 0.85
    assert result.num_examples == len(_digits_client()[1])
    assert result.steps == 4 * -(-result.num_examples // 32)  # 4 epochs of batches of 32


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
    assert float(term.penalty(model).detach()) == 0.0
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    moved = float(term.penalty(model).detach())
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


@pytest.mark.parametrize(
    "options",
    [
        {"optimizer": {"name": "adamw", "lr": 0.003}},
        {"optimizer": {"name": "rmsprop", "lr": 0.001}},
        {"optimizer": {"name": "adam", "lr": 0.003}, "loss": {"name": "gce", "q": 0.7}},
        {"loss": {"name": "sce"}},
        {"loss": {"name": "focal", "gamma": 2.0}},
        {"loss": {"name": "label_smoothing", "smoothing": 0.1}},
        {"class_weights": "balanced", "sampler": "balanced"},
        {"grad_clip": 1.0, "precision": "bf16"},
    ],
    ids=lambda o: "-".join(str(v) for v in o.values())[:40],
)
def test_every_optimizer_loss_and_option_trains(options: dict) -> None:
    _, _, x_test, y_test = _digits_client()
    model, result = _train(seed=1, **options)
    assert result.loss == result.loss  # finite
    assert evaluate(model, x_test, y_test).accuracy > 0.7


def test_gradient_clipping_bounds_each_step() -> None:
    x, y, _, _ = _digits_client()
    torch.manual_seed(0)
    model = create_model("mlp", InputSpec((1, 8, 8), 10))
    start = [p.detach().clone() for p in model.parameters()]
    cfg = TrainConfig(
        local_epochs=1, batch_size=len(y), grad_clip=0.01, optimizer={"lr": 1.0, "momentum": 0.0}
    )
    local_train(model, x, y, train=cfg, num_classes=10, seed=0)  # exactly one step
    step = sum(float(((p - q) ** 2).sum()) for p, q in zip(model.parameters(), start, strict=True))
    assert step**0.5 <= 0.01 + 1e-6  # lr 1 x clipped gradient norm


def test_dropout_training_repeats_whatever_the_global_rng_did_before() -> None:
    x, y, _, _ = _digits_client()
    weights = []
    for noise in (1, 50):
        torch.rand(noise)  # a client process that ran other work first
        torch.manual_seed(0)
        model = build_model(ModelConfig(name="mlp", dropout=0.5), InputSpec((1, 8, 8), 10))
        torch.rand(noise)
        local_train(model, x, y, train=TrainConfig(), num_classes=10, seed=3)
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
