"""The attribution methods on tiny models built here: integrated gradients is complete,
every method returns the input's shape, an unknown method is refused, a missing Captum
is named with its install command."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from fedrobust.errors import FedrobustError
from fedrobust.explain.attributions import (
    METHODS,
    attribute_batches,
    create_method,
    occlusion_window,
    require_captum,
)
from fedrobust.explain.config import METHOD_FIELDS, ExplainConfig


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)
    ).eval()


def inputs(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def test_the_registry_holds_exactly_the_methods_the_schema_names() -> None:
    assert METHODS.names() == sorted(METHOD_FIELDS)


@pytest.mark.parametrize("baseline", ["zeros", "mean"])
def test_integrated_gradients_sum_to_the_output_difference(baseline: str) -> None:
    model, x = tiny_cnn(), inputs()
    cfg = ExplainConfig(method="integrated_gradients", baseline=baseline, n_steps=64)
    method = create_method(cfg, background=torch.rand(20, 1, 8, 8))
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    found = attribute_batches(method, model, x, target)
    with torch.no_grad():
        rows = torch.arange(len(x))
        difference = model(x)[rows, target] - model(method.baseline(x))[rows, target]
    sums = found.maps.reshape(len(x), -1).sum(1)
    assert difference.abs().min() > 1e-3  # a non-trivial check
    assert torch.allclose(sums, difference, atol=1e-3, rtol=1e-3)
    assert torch.allclose(found.delta, sums - difference, atol=1e-5)


def test_the_mean_baseline_is_the_background_mean() -> None:
    background = torch.rand(30, 1, 8, 8)
    method = create_method(ExplainConfig(baseline="mean"), background)
    assert torch.allclose(method.baseline(inputs(2))[1], background.mean(0))


@pytest.mark.parametrize("name", sorted(METHOD_FIELDS))
def test_every_method_returns_the_input_shape(name: str) -> None:
    model, x = tiny_cnn(), inputs(5)
    method = create_method(ExplainConfig(method=name), background=torch.rand(10, 1, 8, 8))
    found = attribute_batches(method, model, x, torch.zeros(5, dtype=torch.long), batch=2)
    assert found.maps.shape == x.shape
    assert torch.isfinite(found.maps).all() and found.maps.abs().sum() > 0
    assert (found.delta is not None) == (name == "integrated_gradients")


@pytest.mark.parametrize("name", sorted(METHOD_FIELDS))
def test_every_method_explains_flat_inputs(name: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 2)).eval()
    x = torch.rand(4, 12)
    method = create_method(ExplainConfig(method=name), background=torch.rand(10, 12))
    found = attribute_batches(method, model, x, torch.ones(4, dtype=torch.long))
    assert found.maps.shape == x.shape


def test_an_unknown_method_is_refused_with_the_known_ones() -> None:
    with pytest.raises(FedrobustError, match="unknown attribution method 'lime'; known: "):
        METHODS.get("lime")


def test_occlusion_window_fits_the_input() -> None:
    assert occlusion_window((1, 28, 28), None) == ((1, 4, 4), (1, 2, 2))
    assert occlusion_window((3, 8, 8), None) == ((3, 2, 2), (3, 1, 1))
    assert occlusion_window((1, 8, 8), 20) == ((1, 8, 8), (1, 4, 4))
    assert occlusion_window((64,), 4) == ((4,), (2,))
    assert occlusion_window((10, 3), None) == ((2, 3), (1, 3))


def test_a_missing_captum_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(FedrobustError, match=r"fedrobust\[explain\]") as caught:
        require_captum()
    assert "evaluation.explain" in caught.value.where and "captum" in caught.value.what
