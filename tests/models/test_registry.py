"""Model registry and the bundled models."""

from __future__ import annotations

import pytest
import torch
from opacus.validators import ModuleValidator

from fedrobust.errors import FedrobustError
from fedrobust.models import InputSpec, create_model, known_models, model_inputs, register_model


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(FedrobustError) as info:
        create_model("resnet9000", InputSpec((1, 8, 8), 10))
    assert info.value.where == "model.name"
    assert "cnn" in info.value.what and "mlp" in info.value.what


def test_registering_a_name_twice_fails() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("cnn")(lambda spec: torch.nn.Linear(1, 1))


def test_unknown_option_names_the_model_field() -> None:
    with pytest.raises(FedrobustError) as info:
        create_model("mlp", InputSpec((4,), 2), channels=[3])
    assert info.value.where == "model.channels"


@pytest.mark.parametrize("name", known_models())
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 6, 6), (28, 28), (5, 3)])
def test_models_fit_the_data_and_need_no_opacus_fix(name: str, shape: tuple[int, ...]) -> None:
    kind = "sequence" if len(shape) == 2 else "image"
    if model_inputs(name) not in ("any", kind):
        pytest.skip(f"{name} takes no {kind} inputs (refused: tests/config)")
    model = create_model(name, InputSpec(shape, 7))
    assert model(torch.zeros(5, *shape)).shape == (5, 7)
    assert ModuleValidator.validate(model, strict=False) == []


def test_cnn_refuses_flat_inputs_and_mlp_takes_them() -> None:
    with pytest.raises(ValueError, match="image inputs"):
        create_model("cnn", InputSpec((64,), 10))
    assert create_model("mlp", InputSpec((64,), 3))(torch.zeros(2, 64)).shape == (2, 3)
