"""FixMatch's weak and strong views of a batch of images, in plain torch.

The geometric ops and noise are :func:`fedrobust.data.augment.apply_op`'s (the
``data.augment`` ops); brightness, contrast, solarize and Cutout are here. Every draw
comes from the caller's seeded generator. Images are (N, C, H, W) in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fedrobust.data.augment import apply_op
from fedrobust.data.config import FlipAugment, NoiseAugment, RotateAugment, ShiftAugment
from fedrobust.semisup.config import StrongAugmentConfig, WeakAugmentConfig

#: The strongest setting of each op (at ``magnitude`` 1), after FixMatch's RandAugment.
MAX_SHIFT = 0.3  # of the image side
MAX_DEGREES = 30.0
MAX_NOISE_STD = 0.1
MAX_FACTOR_CHANGE = 0.9  # brightness and contrast factors in 1 +- this
CUTOUT_FILL = 0.5

Op = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def require_images(x: torch.Tensor, what: str) -> None:
    """Refuse inputs that are not a batch of images (N, C, H, W)."""
    if x.dim() != 4:
        raise ValueError(f"{what} needs image inputs (N, C, H, W), got shape {tuple(x.shape)}")


def _pixels(share: float, x: torch.Tensor) -> int:
    return max(1, round(share * min(x.shape[-2:])))


def _strength(x: torch.Tensor, generator: torch.Generator, magnitude: float) -> torch.Tensor:
    """A random strength in [0, magnitude] per image, shaped to broadcast (N, 1, 1, 1)."""
    return (torch.rand(x.shape[0], generator=generator) * magnitude).view(-1, 1, 1, 1)


def _factor(x: torch.Tensor, generator: torch.Generator, magnitude: float) -> torch.Tensor:
    sign = torch.randint(0, 2, (x.shape[0],), generator=generator).view(-1, 1, 1, 1) * 2 - 1
    return 1 + sign * MAX_FACTOR_CHANGE * _strength(x, generator, magnitude)


def brightness(x: torch.Tensor, generator: torch.Generator, magnitude: float) -> torch.Tensor:
    """Scale each image's pixels by a random factor in 1 +- 0.9 * magnitude."""
    return (x * _factor(x, generator, magnitude)).clamp(0.0, 1.0)


def contrast(x: torch.Tensor, generator: torch.Generator, magnitude: float) -> torch.Tensor:
    """Scale each image's deviation from its mean by a random factor in 1 +- 0.9 * m."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (mean + (x - mean) * _factor(x, generator, magnitude)).clamp(0.0, 1.0)


def solarize(x: torch.Tensor, generator: torch.Generator, magnitude: float) -> torch.Tensor:
    """Invert the pixels above a random threshold in [1 - magnitude / 2, 1]."""
    threshold = 1 - _strength(x, generator, magnitude) / 2
    return torch.where(x >= threshold, 1 - x, x)


def cutout(x: torch.Tensor, generator: torch.Generator, share: float) -> torch.Tensor:
    """Paint a grey square of random side (up to ``share`` of the image side) at a
    random centre of each image; the square may overhang the border."""
    n, _, height, width = x.shape
    side = torch.rand(n, generator=generator) * share * min(height, width)
    cy = torch.rand(n, generator=generator) * height
    cx = torch.rand(n, generator=generator) * width
    rows = torch.arange(height).view(1, -1, 1) + 0.5
    cols = torch.arange(width).view(1, 1, -1) + 0.5
    half = (side / 2).view(-1, 1, 1)
    inside = ((rows - cy.view(-1, 1, 1)).abs() < half) & ((cols - cx.view(-1, 1, 1)).abs() < half)
    return torch.where(inside.unsqueeze(1), torch.full_like(x, CUTOUT_FILL), x)


def strong_ops(cfg: StrongAugmentConfig) -> dict[str, Op]:
    """The strong augmentation's ops by name, at ``cfg.magnitude``."""
    m = cfg.magnitude
    table: dict[str, Op] = {
        "shift": lambda x, g: apply_op(
            x, ShiftAugment(name="shift", pixels=_pixels(MAX_SHIFT * m, x)), g
        ),
        "rotate": lambda x, g: apply_op(
            x, RotateAugment(name="rotate", degrees=MAX_DEGREES * m), g
        ),
        "noise": lambda x, g: apply_op(x, NoiseAugment(name="noise", std=MAX_NOISE_STD * m), g),
        "flip": lambda x, g: apply_op(x, FlipAugment(name="flip", p=1.0), g),
        "brightness": lambda x, g: brightness(x, g, m),
        "contrast": lambda x, g: contrast(x, g, m),
        "solarize": lambda x, g: solarize(x, g, m),
    }
    return {name: table[name] for name in cfg.ops}


def weak_view(x: torch.Tensor, cfg: WeakAugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """The weak view: a random shift of up to ``cfg.shift`` of the side, and a flip."""
    require_images(x, "train.semi_supervised.weak")
    if cfg.flip:
        x = apply_op(x, FlipAugment(name="flip", p=0.5), generator)
    if cfg.shift > 0:
        x = apply_op(x, ShiftAugment(name="shift", pixels=_pixels(cfg.shift, x)), generator)
    return x


def strong_view(
    x: torch.Tensor, cfg: StrongAugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """The strong view: ``cfg.num_ops`` ops drawn per image from ``cfg.ops``, then Cutout."""
    require_images(x, "train.semi_supervised.strong")
    ops = list(strong_ops(cfg).values())
    out = x.clone()
    for _ in range(cfg.num_ops):
        choice = torch.randint(0, len(ops), (len(x),), generator=generator)
        for k, op in enumerate(ops):
            chosen = choice == k
            if chosen.any():
                out[chosen] = op(out[chosen], generator)
    return cutout(out, generator, cfg.cutout) if cfg.cutout > 0 else out
