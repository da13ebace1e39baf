"""FixMatch's weak and strong views: images only, seeded, within range."""

from __future__ import annotations

import pytest
import torch

from fedrobust.semisup.augment import (
    brightness,
    contrast,
    cutout,
    solarize,
    strong_view,
    weak_view,
)
from fedrobust.semisup.config import StrongAugmentConfig, WeakAugmentConfig


def _images() -> torch.Tensor:
    return torch.rand(16, 1, 12, 12, generator=torch.Generator().manual_seed(0))


def test_views_keep_shape_and_range_and_repeat_with_the_seed() -> None:
    x = _images()
    for view, cfg in ((weak_view, WeakAugmentConfig()), (strong_view, StrongAugmentConfig())):
        a = view(x, cfg, torch.Generator().manual_seed(1))
        b = view(x, cfg, torch.Generator().manual_seed(1))
        assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
        assert 0 <= a.min() and a.max() <= 1


def test_weak_view_shifts_without_mirroring() -> None:
    x = torch.zeros(32, 1, 8, 8)
    x[:, 0, 4, 1] = 1.0  # a dot left of the centre
    out = weak_view(x, WeakAugmentConfig(shift=0.125), torch.Generator().manual_seed(0))
    cols = out[:, 0].amax(dim=1).argmax(dim=1)
    assert cols.max() <= 2  # shifted by at most one pixel, never mirrored to the right


def test_views_refuse_inputs_that_are_not_images() -> None:
    flat = torch.rand(4, 10)
    with pytest.raises(ValueError, match="image inputs"):
        weak_view(flat, WeakAugmentConfig(), torch.Generator())
    with pytest.raises(ValueError, match="image inputs"):
        strong_view(flat, StrongAugmentConfig(), torch.Generator())


def test_cutout_paints_a_grey_square_no_larger_than_the_share() -> None:
    x = torch.zeros(64, 1, 10, 10)
    out = cutout(x, torch.Generator().manual_seed(0), 0.5)
    grey = (out == 0.5).flatten(1).sum(1)
    assert grey.max() <= 25 and grey.sum() > 0
    assert set(out.unique().tolist()) <= {0.0, 0.5}


def test_intensity_ops_change_values_within_range() -> None:
    x = _images()
    g = torch.Generator().manual_seed(0)
    for op in (brightness, contrast, solarize):
        out = op(x, g, 1.0)
        assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
        assert not torch.equal(out, x)


def test_strong_view_applies_only_the_listed_ops() -> None:
    x = _images()
    only_flip = StrongAugmentConfig(ops=["flip"], num_ops=1, cutout=0.0)
    assert torch.equal(strong_view(x, only_flip, torch.Generator()), x.flip(-1))
