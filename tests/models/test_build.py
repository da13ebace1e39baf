"""Building a model from the scenario's model section: options, init, normalisation."""

from __future__ import annotations

import pytest
import torch
from opacus.validators import ModuleValidator

from fedrobust.errors import FedrobustError
from fedrobust.models import InputSpec
from fedrobust.models.build import build_model
from fedrobust.models.config import ModelConfig
from fedrobust.scenario import parse_scenario

SPEC = InputSpec((1, 8, 8), 10)


def test_normalisation_inside_the_model_equals_normalising_the_input() -> None:
    cfg = {"name": "cnn", "normalize": {"mean": [0.3], "std": [0.2]}}
    torch.manual_seed(0)
    normalized = build_model(ModelConfig(**cfg), SPEC)
    torch.manual_seed(0)
    plain = build_model(ModelConfig(name="cnn"), SPEC)
    x = torch.rand(4, 1, 8, 8)
    assert torch.allclose(normalized(x), plain((x - 0.3) / 0.2), atol=1e-6)
    state = normalized.state_dict()
    assert state["mean"].item() == pytest.approx(0.3) and state["std"].item() == pytest.approx(0.2)
    assert ModuleValidator.validate(normalized, strict=False) == []


def test_normalisation_needs_one_value_per_channel() -> None:
    with pytest.raises(FedrobustError) as info:
        build_model(ModelConfig(name="cnn", normalize={"mean": [0.5, 0.5], "std": [1, 1]}), SPEC)
    assert info.value.where == "model.normalize.mean"
    with pytest.raises(FedrobustError) as info:
        parse_scenario({"name": "x", "model": {"normalize": {"mean": [0.5], "std": [1, 2]}}})
    assert info.value.where == "model.normalize.std"


@pytest.mark.parametrize("init", ["kaiming", "xavier"])
def test_init_schemes_reset_weights_and_zero_biases(init: str) -> None:
    torch.manual_seed(0)
    default = build_model(ModelConfig(name="mlp"), SPEC)
    torch.manual_seed(0)
    other = build_model(ModelConfig(name="mlp", init=init), SPEC)
    first = other.net[1]
    assert not torch.equal(first.weight, default.net[1].weight)
    assert torch.count_nonzero(first.bias) == 0


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "prelu", "gelu", "tanh"])
def test_every_activation_builds_for_every_model(activation: str) -> None:
    for name in ("cnn", "mlp", "resnet"):
        model = build_model(ModelConfig(name=name, activation=activation, init="kaiming"), SPEC)
        assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_dropout_is_active_in_training_only() -> None:
    model = build_model(ModelConfig(name="mlp", dropout=0.5), SPEC)
    x = torch.rand(8, 1, 8, 8)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_checkpointing_gives_the_same_gradients() -> None:
    x = torch.rand(4, 1, 8, 8)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = build_model(ModelConfig(name="resnet", checkpointing=checkpointing), SPEC).train()
        model(x).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads, strict=True))


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_image_models_train_on_three_channel_32x32_inputs(name: str) -> None:
    model = build_model(ModelConfig(name=name), InputSpec((3, 32, 32), 10))
    logits = model(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert ModuleValidator.validate(model, strict=False) == []  # DP-SGD can train it
