"""DP-SGD on the sequence models: every engine the scenario allows clips each example."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from fedrobust.config.compat import TIED_WEIGHT_MODELS
from fedrobust.models import InputSpec, create_model
from fedrobust.privacy.dpsgd import GRAD_SAMPLE_MODES, DPSGDRecipe, PrivateTraining
from fedrobust.privacy.fastclip import uncovered_layers

SPEC = InputSpec((5, 3), 4)
MODELS = {
    "gru": {"hidden": [6]},
    "lstm": {"hidden": [6, 5], "bidirectional": True},
    "transformer": {"hidden": [8], "heads": 2, "layers": 1},
}
CLIP = 0.05
CASES = [
    (name, mode)
    for name in MODELS
    for mode in GRAD_SAMPLE_MODES
    if not (mode == "ghost" and name in TIED_WEIGHT_MODELS)  # refused: tests/config
]


def per_example(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[list[torch.Tensor]]:
    """Each example's gradient, one example at a time (the definition)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        list(torch.autograd.grad(nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]),
                                 params))
        for i in range(len(y))
    ]  # fmt: skip


def norm(grads: list[torch.Tensor]) -> float:
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))


@pytest.mark.parametrize("name", MODELS)
def test_fast_clipping_covers_every_sequence_model(name: str) -> None:
    assert uncovered_layers(create_model(name, SPEC, **MODELS[name])) == []


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_the_private_gradient_is_the_mean_of_clipped_per_example_gradients(
    name: str, mode: str
) -> None:
    torch.manual_seed(0)
    model = create_model(name, SPEC, **MODELS[name])
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(6, 5, 3, generator=g), torch.randint(0, 4, (6,), generator=g)
    grads = per_example(copy.deepcopy(model), x, y)
    assert min(norm(e) for e in grads) > CLIP  # every example is clipped
    expected = [
        sum(min(1.0, CLIP / (norm(e) + 1e-6)) * e[k].double() for e in grads) / len(y)
        for k in range(len(grads[0]))
    ]
    recipe = DPSGDRecipe(0.0, CLIP, poisson_sampling=False, grad_sample_mode=mode)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    private = PrivateTraining(model, optimizer, nn.CrossEntropyLoss(), x, y, 6, recipe, seed=0)
    assert private.mode == mode  # no fallback
    xb, yb = next(iter(private.epoch()))
    private.optimizer.zero_grad(set_to_none=True)
    private.backward(private.criterion(private.model(xb), yb))
    assert private.optimizer.pre_step()  # type: ignore[attr-defined]
    got = torch.cat([p.grad.double().flatten() for p in private.optimizer.params])  # type: ignore[attr-defined]
    want = torch.cat([t.flatten() for t in expected])
    private.close()
    assert float((got - want).norm() / want.norm()) < 1e-5
