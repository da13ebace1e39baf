"""The small transformer encoder: shapes, options, refusals."""

from __future__ import annotations

import pytest
import torch

from fedrobust.errors import FedrobustError
from fedrobust.models import InputSpec, create_model
from fedrobust.models.config import ModelConfig

SPEC = InputSpec((7, 5), 4)


@pytest.mark.parametrize(
    "options", [{}, {"hidden": [12], "heads": 3, "layers": 1, "dropout": 0.1, "activation": "gelu"}]
)
def test_output_is_one_logit_row_per_sequence(options: dict) -> None:
    model = create_model("transformer", SPEC, **options)
    assert model(torch.rand(3, 7, 5)).shape == (3, 4)


def test_the_position_of_a_step_matters() -> None:
    torch.manual_seed(0)
    model = create_model("transformer", SPEC, hidden=[8], heads=2).eval()
    x = torch.rand(1, 7, 5)
    assert not torch.allclose(model(x), model(x.flip(1)))  # no bag of steps


def test_images_are_refused() -> None:
    with pytest.raises(ValueError, match=r"transformer needs sequence inputs \(T, F\)"):
        create_model("transformer", InputSpec((1, 8, 8), 10))


def test_width_and_heads_errors_name_their_field() -> None:
    with pytest.raises(FedrobustError) as info:
        create_model("transformer", SPEC, hidden=[10], heads=4)
    assert info.value.where == "model.heads"
    with pytest.raises(FedrobustError) as info:
        create_model("transformer", SPEC, hidden=[8, 8])
    assert info.value.where == "model.hidden"


def test_heads_and_layers_apply_to_the_transformer_only() -> None:
    assert ModelConfig(name="transformer", heads=2, layers=3).layers == 3
    for name in ("gru", "cnn"):
        with pytest.raises(ValueError, match=f"does not apply to model '{name}'"):
            ModelConfig(name=name, heads=2)
