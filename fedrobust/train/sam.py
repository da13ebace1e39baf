"""Where a training step takes its gradient: at the weights, or near them.

The local loop (:func:`fedrobust.train.local.local_train`) hands each batch's forward and
backward pass to a :class:`Perturbation`, which leaves in ``p.grad`` the gradient the
optimizer then applies from the unchanged weights ``w``:

- :class:`Perturbation`: at ``w`` (plain training).
- :class:`SharpnessAware`: at ``w + e_w``, ``e_w`` the loss's steepest ascent of radius
  ``rho``: ``e_w = rho * g / ||g||`` (SAM, Foret et al. 2021,
  https://arxiv.org/abs/2010.01412), or ``e_w = rho * T_w^2 g / ||T_w g||`` with
  ``T_w = |w| + eta`` element-wise (ASAM, Kwon et al. 2021,
  https://arxiv.org/abs/2102.11600); a second forward/backward pass on the same batch.
- :class:`WeightNoise`: at ``w + n``, ``n ~ N(0, std^2)`` (Gaussian weight noise).

Only trainable parameters (``requires_grad``) move; the weights are copied back exactly
before the optimizer steps. SAM's second pass leaves BatchNorm's running statistics as
the first pass left them (each batch counts once); weight noise's one pass updates them
at the noisy weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch import nn

from fedrobust.train.config import TrainConfig

T = TypeVar("T")


class Perturbation:
    """Takes the gradient at the weights themselves (plain training).

    Parameters
    ----------
    params : list[torch.Tensor]
        The trainable parameters.
    """

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params = params

    def gradients(self, backward: Callable[[], T]) -> T:
        """Run ``backward`` (one batch's forward and backward pass) and return its result.

        On return ``p.grad`` holds the gradient the optimizer applies, and every
        parameter holds the weights it held on entry.
        """
        return backward()

    @contextmanager
    def _moved(self, offsets: list[torch.Tensor | None]) -> Iterator[None]:
        """The parameters at ``w + offset`` inside, exactly ``w`` again after."""
        saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, offset in zip(self.params, offsets, strict=True):
                if offset is not None:
                    p.add_(offset)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, w in zip(self.params, saved, strict=True):
                    p.copy_(w)


class SharpnessAware(Perturbation):
    """SAM / ASAM: the gradient at the worst point of a ``rho``-neighbourhood of ``w``.

    Parameters
    ----------
    params : list[torch.Tensor]
        The trainable parameters.
    model : nn.Module
        Their module (its BatchNorm running statistics are kept through the second pass).
    rho : float
        Radius of the neighbourhood.
    adaptive : bool
        ASAM: the neighbourhood scaled element-wise by ``T_w = |w| + eta``.
    eta : float
        ASAM's offset, so a weight at zero can still move.
    """

    def __init__(
        self,
        params: list[torch.Tensor],
        model: nn.Module,
        rho: float,
        adaptive: bool = False,
        eta: float = 0.01,
    ) -> None:
        super().__init__(params)
        self.model, self.rho, self.adaptive, self.eta = model, rho, adaptive, eta

    def ascent(self) -> list[torch.Tensor | None]:
        """``e_w`` from the gradients in ``p.grad`` (None where a parameter has none)."""
        scales = [self._scale(p) for p in self.params]
        scaled = [  # T_w g
            None if p.grad is None else t * p.grad.detach()
            for p, t in zip(self.params, scales, strict=True)
        ]
        norms = [s.norm() for s in scaled if s is not None]
        norm = torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.tensor(0.0)
        if norm == 0:  # no gradient: no ascent
            return [None] * len(self.params)
        return [  # rho T_w^2 g / ||T_w g||
            None if s is None else self.rho * t * s / norm
            for s, t in zip(scaled, scales, strict=True)
        ]

    def _scale(self, p: torch.Tensor) -> torch.Tensor | float:
        """``T_w``: ``|w| + eta`` element-wise for ASAM, 1 for SAM."""
        return p.detach().abs() + self.eta if self.adaptive else 1.0

    def gradients(self, backward: Callable[[], T]) -> T:
        """First pass at ``w`` (its result is returned), second at ``w + e_w``."""
        result = backward()
        offsets = self.ascent()
        for p in self.params:
            p.grad = None
        with self._moved(offsets), _running_stats_kept(self.model):
            backward()
        return result


class WeightNoise(Perturbation):
    """The gradient at ``w + n``, ``n ~ N(0, std^2)`` drawn afresh for every batch.

    Parameters
    ----------
    params : list[torch.Tensor]
        The trainable parameters.
    std : float
        Standard deviation of the noise.
    seed : int
        Seeds the draws (the client's round seed: the same seed, the same noise).
    """

    def __init__(self, params: list[torch.Tensor], std: float, seed: int) -> None:
        super().__init__(params)
        self.std = std
        self.generator = torch.Generator().manual_seed(seed)

    def gradients(self, backward: Callable[[], T]) -> T:
        """One pass at the noisy weights (its result is returned)."""
        noise = [
            self.std * torch.randn(p.shape, generator=self.generator, dtype=p.dtype).to(p.device)
            for p in self.params  # drawn on the CPU: the same noise on every device
        ]
        with self._moved(noise):  # type: ignore[arg-type]
            return backward()


def perturbation(train: TrainConfig, model: nn.Module, seed: int) -> Perturbation:
    """The scenario's choice for ``model``'s trainable parameters.

    Parameters
    ----------
    train : TrainConfig
        ``optimizer.sam`` and ``weight_noise`` (at most one is set).
    model : nn.Module
        The model being trained.
    seed : int
        The client's round seed (weight noise draws).
    """
    params = [p for p in model.parameters() if p.requires_grad]  # model.freeze: not these
    sam = train.optimizer.sam
    if sam is not None:
        return SharpnessAware(params, model, sam.rho, sam.adaptive, sam.eta)
    if train.weight_noise is not None:
        return WeightNoise(params, train.weight_noise.std, seed)
    return Perturbation(params)


@contextmanager
def _running_stats_kept(model: nn.Module) -> Iterator[None]:
    """BatchNorm running statistics (and batch counts) as they were on entry, after."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [[b.detach().clone() for b in m.buffers()] for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, buffers in zip(norms, saved, strict=True):
                for b, kept in zip(m.buffers(), buffers, strict=True):
                    b.copy_(kept)
