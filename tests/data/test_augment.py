"""Batch augmentation in torch."""

from __future__ import annotations

import torch

from fedrobust.data.augment import apply_op
from fedrobust.data.config import FlipAugment, NoiseAugment, RotateAugment, ShiftAugment


def _dot() -> torch.Tensor:
    x = torch.zeros(4, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0
    return x


def test_shift_moves_pixels_by_at_most_the_setting() -> None:
    out = apply_op(_dot(), ShiftAugment(name="shift", pixels=2), torch.Generator().manual_seed(0))
    for img in out[:, 0]:
        r, c = divmod(int(img.argmax()), 9)
        assert abs(r - 4) <= 2 and abs(c - 4) <= 2
        assert img.max() > 0.99  # whole-pixel shifts keep the value


def test_flip_noise_rotate_keep_shape_and_range() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 9, 9)
    flipped = apply_op(x, FlipAugment(name="flip", p=1.0), g)
    assert torch.equal(flipped, x.flip(-1))
    noisy = apply_op(x, NoiseAugment(name="noise", std=0.1), g)
    assert 0 <= noisy.min() and noisy.max() <= 1 and not torch.equal(noisy, x)
    rotated = apply_op(_dot(), RotateAugment(name="rotate", degrees=30), g)
    assert rotated.shape == (4, 1, 9, 9)
    assert torch.allclose(rotated[:, 0, 4, 4], torch.ones(4), atol=1e-5)  # the centre stays


def test_same_seed_same_augmentation() -> None:
    x = torch.rand(8, 1, 9, 9)
    op = RotateAugment(name="rotate", degrees=15)
    a = apply_op(x, op, torch.Generator().manual_seed(3))
    b = apply_op(x, op, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
