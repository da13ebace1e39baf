"""Training-batch augmentation in plain torch (no torchvision).

Applied on clients to training batches only, through the ``Augment`` train plugin.
Each op draws from a seeded generator, so runs repeat exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fedrobust.data.config import FlipAugment, NoiseAugment, RotateAugment, ShiftAugment

AugmentOp = ShiftAugment | FlipAugment | RotateAugment | NoiseAugment


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    theta = theta.to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def rotate(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate each image of ``x`` (N, C, H, W) by its ``angle`` (N radians), zero fill."""
    theta = torch.zeros(x.shape[0], 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = angle.cos(), -angle.sin()
    theta[:, 1, 0], theta[:, 1, 1] = angle.sin(), angle.cos()
    return _affine(x, theta)


def apply_op(x: torch.Tensor, op: AugmentOp, generator: torch.Generator) -> torch.Tensor:
    """One augmentation on a batch of images (N, C, H, W) in [0, 1].

    The draws come from ``generator`` on the CPU (the same on every device) and are
    applied on the batch's device."""
    n = x.shape[0]
    if isinstance(op, NoiseAugment):
        noise = torch.randn(x.shape, generator=generator).to(x.device)
        return (x + op.std * noise).clamp(0.0, 1.0)
    if isinstance(op, FlipAugment):
        mask = (torch.rand(n, generator=generator) < op.p).view(n, 1, 1, 1).to(x.device)
        return torch.where(mask, x.flip(-1), x)
    if isinstance(op, RotateAugment):
        angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(op.degrees)
        return rotate(x, angle)
    theta = torch.zeros(n, 2, 3)
    # shift: integer pixel offsets, expressed in normalised [-1, 1] grid units
    offsets = torch.randint(-op.pixels, op.pixels + 1, (n, 2), generator=generator).float()
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = offsets[:, 0] * 2 / x.shape[-1]
    theta[:, 1, 2] = offsets[:, 1] * 2 / x.shape[-2]
    return _affine(x, theta)
