"""Attribution-map arithmetic: stratified examples, per-class means, and the share
inside the backdoor trigger on a hand-made model that only looks at the trigger."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedrobust.explain.attributions import attribute_batches, create_method
from fedrobust.explain.config import ExplainConfig
from fedrobust.explain.maps import (
    class_means,
    display,
    mask_fraction,
    shares,
    stratified_indices,
    trigger_mask,
)
from fedrobust.robust.config import AttackConfig
from fedrobust.robust.poisoning import stamp_trigger

BACKDOOR = AttackConfig(kind="backdoor", trigger_size=2, trigger_value=1.0)


def test_the_examples_are_stratified_seeded_and_distinct() -> None:
    y = np.repeat(np.arange(4), [50, 30, 3, 17])
    chosen = stratified_indices(y, 20, seed=3)
    assert len(set(chosen.tolist())) == 20
    assert np.bincount(y[chosen], minlength=4).tolist() == [6, 6, 3, 5]
    assert (chosen == stratified_indices(y, 20, seed=3)).all()
    assert (chosen != stratified_indices(y, 20, seed=4)).any()
    assert (stratified_indices(y, 500, seed=3) == np.arange(100)).all()


def test_class_means_average_the_normalised_maps_of_each_class() -> None:
    maps = np.array([[[1.0, 1.0]], [[0.0, 4.0]], [[3.0, -1.0]]])
    assert np.allclose(np.abs(shares(maps)).reshape(3, -1).sum(1), 1.0)
    means = class_means(maps, np.array([0, 0, 2]), num_classes=3)
    assert sorted(means) == [0, 2]
    assert np.allclose(means[0], [[0.25, 0.75]])
    assert np.allclose(means[2], [[0.75, -0.25]])


def test_images_are_displayed_summed_over_channels() -> None:
    assert display(np.ones((2, 3, 4, 5))).shape == (2, 4, 5)
    assert display(np.ones((2, 7))).shape == (2, 7)


def test_the_trigger_mask_is_where_the_trigger_is_stamped() -> None:
    mask = trigger_mask(BACKDOOR, (1, 8, 8))
    assert mask.sum() == 4 and mask[0, -2:, -2:].all()
    dark = AttackConfig(kind="backdoor", trigger_size=3, trigger_value=0.0)
    assert trigger_mask(dark, (10,)).tolist() == [False] * 7 + [True] * 3


def test_mask_fraction_is_the_share_of_absolute_attribution_inside() -> None:
    mask = np.array([True, False, False, False])
    maps = np.array([[2.0, -1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert mask_fraction(maps, mask).tolist() == [0.5, 0.0]


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency", "gradient_shap"])
def test_a_model_that_only_sees_the_trigger_puts_all_attribution_there(method: str) -> None:
    mask = trigger_mask(BACKDOOR, (1, 8, 8))
    weights = torch.zeros(2, 64)
    weights[0, torch.from_numpy(mask.reshape(-1))] = 1.0  # class 0: the trigger's brightness
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(weights)
    x = torch.from_numpy(stamp_trigger(BACKDOOR, np.random.default_rng(0).random((8, 1, 8, 8))))
    x = x.float()
    explainer = create_method(ExplainConfig(method=method), background=torch.rand(10, 1, 8, 8))
    found = attribute_batches(explainer, model, x, torch.zeros(8, dtype=torch.long))
    fraction = mask_fraction(found.maps.numpy(), mask)
    assert fraction.min() > 0.99
    area = mask.mean()
    rest = torch.rand(8, 1, 8, 8)  # a model reading every pixel alike spreads it out
    uniform = nn.Sequential(nn.Flatten(), nn.Linear(64, 2, bias=False))
    with torch.no_grad():
        uniform[1].weight.fill_(1.0)
    spread = attribute_batches(explainer, uniform, rest, torch.zeros(8, dtype=torch.long))
    assert mask_fraction(spread.maps.numpy(), mask).mean() < 3 * area
