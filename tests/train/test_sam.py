"""Sharpness-aware training (SAM, ASAM) and Gaussian weight noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from fedrobust.errors import FedrobustError
from fedrobust.privacy.dpsgd import DPSGDRecipe
from fedrobust.scenario import parse_scenario
from fedrobust.train import L1Penalty, local_train
from fedrobust.train.config import SamConfig, TrainConfig
from fedrobust.train.sam import Perturbation, SharpnessAware, WeightNoise, perturbation

W0 = [1.0, 2.0]  # the weights of the tiny linear model
X = [1.0, 1.0]  # its one input; the loss is 0.5 * (w . x)^2, so g = (w . x) x


def _linear() -> nn.Linear:
    model = nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([W0], dtype=torch.float64))
    return model


def _quadratic_step(model: nn.Linear, chosen: Perturbation, lr: float) -> list[float]:
    """One SGD step of 0.5 * (w . x)^2 with the gradient taken where ``chosen`` says."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x = torch.tensor([X], dtype=torch.float64)

    def backward() -> None:
        (0.5 * model(x).pow(2).sum()).backward()

    opt.zero_grad()
    chosen.gradients(backward)
    opt.step()
    return model.weight.detach().flatten().tolist()


def _by_hand(e: list[float], lr: float) -> list[float]:
    """``w - lr * g(w + e)`` for the quadratic loss."""
    residual = sum((w + d) * x for w, d, x in zip(W0, e, X, strict=True))
    return [w - lr * residual * x for w, x in zip(W0, X, strict=True)]


def test_sam_step_matches_the_hand_computed_one() -> None:
    rho, lr = 0.05, 0.1
    g = [3.0, 3.0]  # (1 + 2) * [1, 1]
    norm = math.sqrt(sum(v * v for v in g))
    e = [rho * v / norm for v in g]  # e_w = rho g / ||g||
    model = _linear()
    updated = _quadratic_step(model, SharpnessAware(list(model.parameters()), model, rho), lr)
    assert updated == pytest.approx(_by_hand(e, lr), abs=1e-14)
    assert updated != pytest.approx(_by_hand([0.0, 0.0], lr), abs=1e-6)  # not plain SGD


def test_asam_step_matches_the_hand_computed_one() -> None:
    rho, eta, lr = 0.5, 0.01, 0.1
    g = [3.0, 3.0]
    t = [abs(w) + eta for w in W0]  # T_w = |w| + eta
    norm = math.sqrt(sum((ti * gi) ** 2 for ti, gi in zip(t, g, strict=True)))
    e = [rho * ti * ti * gi / norm for ti, gi in zip(t, g, strict=True)]  # T^2 g / ||T g||
    model = _linear()
    params = list(model.parameters())
    updated = _quadratic_step(model, SharpnessAware(params, model, rho, True, eta), lr)
    assert updated == pytest.approx(_by_hand(e, lr), abs=1e-14)
    sam = _by_hand([rho * v / math.sqrt(18) for v in g], lr)
    assert updated != pytest.approx(sam, abs=1e-6)  # the scaling changes the step


def test_the_second_pass_sees_w_plus_e_and_the_weights_come_back_exactly() -> None:
    model = _linear()
    seen: list[torch.Tensor] = []
    x = torch.tensor([X], dtype=torch.float64)

    def backward() -> None:
        seen.append(model.weight.detach().clone())
        (0.5 * model(x).pow(2).sum()).backward()

    SharpnessAware(list(model.parameters()), model, rho=0.05).gradients(backward)
    w = torch.tensor([W0], dtype=torch.float64)
    assert torch.equal(seen[0], w)
    assert not torch.equal(seen[1], w)
    assert torch.equal(model.weight.detach(), w)  # the optimizer steps from w
    residual = float((seen[1] @ x.T).squeeze())
    assert model.weight.grad.flatten().tolist() == pytest.approx([residual] * 2)  # g(w + e)


def test_frozen_parameters_are_neither_perturbed_nor_trained() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    model[0].requires_grad_(False)
    frozen = [p.detach().clone() for p in model[0].parameters()]
    chosen = perturbation(TrainConfig(optimizer={"sam": {"rho": 1.0}}), model, seed=0)
    assert len(chosen.params) == 2  # the head's weight and bias
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    passes: list[list[torch.Tensor]] = []

    def backward() -> None:
        passes.append([p.detach().clone() for p in model.parameters()])
        nn.functional.cross_entropy(model(x), y).backward()

    chosen.gradients(backward)
    assert len(passes) == 2
    assert all(torch.equal(a, b) for a, b in zip(passes[1][:2], frozen, strict=True))
    assert not torch.equal(passes[1][2], passes[0][2])  # the head moved to w + e


def test_the_second_pass_leaves_batchnorm_running_statistics_alone() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).train()
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))

    def backward() -> None:
        nn.functional.cross_entropy(model(x), y).backward()

    once = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).train()
    once.load_state_dict(model.state_dict())
    nn.functional.cross_entropy(once(x), y).backward()
    SharpnessAware([p for p in model.parameters()], model, rho=0.5).gradients(backward)
    assert torch.equal(model[1].running_mean, once[1].running_mean)
    assert torch.equal(model[1].running_var, once[1].running_var)
    assert int(model[1].num_batches_tracked) == 1


def _tiny_client() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0).astype(np.int64)


def test_local_train_with_sam_takes_the_gradient_at_w_plus_e_with_the_penalty_in_both() -> None:
    x, y = _tiny_client()
    torch.manual_seed(0)
    model = nn.Linear(5, 4)
    start = [p.detach().clone() for p in model.parameters()]
    train = TrainConfig(
        batch_size=64, optimizer={"momentum": 0, "lr": 0.5, "sam": {"rho": 0.3}}, grad_clip=0.7
    )
    local_train(model, x, y, train=train, num_classes=4, seed=0, plugins=(L1Penalty(0.1),))

    def gradient(weights: list[torch.Tensor]) -> list[torch.Tensor]:
        w, b = (v.clone().requires_grad_(True) for v in weights)
        logits = torch.from_numpy(x) @ w.T + b
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(y)) + 0.1 * w.abs().sum()
        return list(torch.autograd.grad(loss, [w, b]))

    g = gradient(start)
    norm = torch.linalg.vector_norm(torch.stack([v.norm() for v in g]))
    g_sharp = gradient([w + 0.3 * v / norm for w, v in zip(start, g, strict=True)])
    total = float(torch.linalg.vector_norm(torch.stack([v.norm() for v in g_sharp])))
    assert total > 0.7  # the clipping after the second pass matters here
    g_sharp = [v * 0.7 / (total + 1e-6) for v in g_sharp]  # as clip_grad_norm_ scales
    expected = [w - 0.5 * v for w, v in zip(start, g_sharp, strict=True)]
    for got, want in zip(model.parameters(), expected, strict=True):
        assert torch.allclose(got.detach(), want, atol=1e-6)


@pytest.mark.parametrize(
    ("sam", "field"),
    [
        ({"rho": 0}, "rho"),
        ({"rho": -0.1}, "rho"),
        ({"adaptive": "maybe"}, "adaptive"),
        ({"rho": 0.05, "radius": 1}, "radius"),
        ({"eta": 0.1}, "eta"),  # eta is ASAM's only
    ],
)
def test_sam_settings_are_validated_naming_the_field(sam: dict, field: str) -> None:
    with pytest.raises(FedrobustError) as info:
        parse_scenario({"name": "s", "train": {"optimizer": {"sam": sam}}})
    assert info.value.where == f"train.optimizer.sam.{field}"


def test_sam_defaults_and_asam_with_eta_are_accepted() -> None:
    assert SamConfig() == SamConfig(rho=0.05, adaptive=False)
    scenario = parse_scenario(
        {
            "name": "s",
            "train": {"optimizer": {"name": "adamw", "sam": {"adaptive": True, "eta": 0}}},
        }
    )
    assert scenario.train.optimizer.sam.adaptive


def test_weight_noise_and_sam_together_are_refused() -> None:
    with pytest.raises(FedrobustError) as info:
        parse_scenario(
            {"name": "s", "train": {"optimizer": {"sam": {}}, "weight_noise": {"std": 0.01}}}
        )
    assert info.value.where == "train.weight_noise"


def test_sam_under_dp_sgd_is_refused_naming_both_sections() -> None:
    doc = {
        "name": "s",
        "train": {"optimizer": {"sam": {"rho": 0.05}}},
        "privacy": {"dp": {"mode": "sample", "noise_multiplier": 1.0}},
    }
    with pytest.raises(FedrobustError) as info:
        parse_scenario(doc)
    assert info.value.where == "train.optimizer.sam"
    assert "privacy.dp.mode: sample" in info.value.what
    doc["privacy"]["dp"] = {"mode": "client", "noise_multiplier": 0.5}
    parse_scenario(doc)  # client-level DP clips and noises the whole update: it composes


def test_weight_noise_restores_the_weights_and_repeats_with_its_seed() -> None:
    model = _linear()
    seen: list[torch.Tensor] = []
    x = torch.tensor([X], dtype=torch.float64)

    def backward() -> None:
        seen.append(model.weight.detach().clone())
        (0.5 * model(x).pow(2).sum()).backward()

    w = model.weight.detach().clone()
    for seed in (3, 3, 4):
        WeightNoise(list(model.parameters()), std=0.01, seed=seed).gradients(backward)
        assert torch.equal(model.weight.detach(), w)
    assert torch.equal(seen[0], seen[1])
    assert not torch.equal(seen[0], seen[2])
    assert 0 < float((seen[0] - w).abs().max()) < 0.1


def _noisy_train(seed: int, dp: DPSGDRecipe | None = None) -> list[torch.Tensor]:
    x, y = _tiny_client()
    torch.manual_seed(0)
    model = nn.Linear(5, 4)
    train = TrainConfig(batch_size=64, local_epochs=3, weight_noise={"std": 0.05})
    local_train(model, x, y, train=train, num_classes=4, seed=seed, dp=dp)
    return [p.detach().clone() for p in model.parameters()]


def test_weight_noise_training_is_seeded() -> None:
    a, b, c = _noisy_train(1), _noisy_train(1), _noisy_train(2)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a, c, strict=True))


@pytest.mark.parametrize("mode", ["fast", "hooks"])
def test_weight_noise_under_dp_sgd_takes_the_same_gradient_as_without(mode: str) -> None:
    # No noise, no clipping, one batch of everything: DP-SGD's step is the plain one.
    dp = DPSGDRecipe(0.0, 1e6, poisson_sampling=False, grad_sample_mode=mode, reproducible=True)
    plain, private = _noisy_train(1), _noisy_train(1, dp)
    assert all(torch.allclose(p, q, atol=1e-5) for p, q in zip(plain, private, strict=True))
