"""The attribution methods, one small class each, on Captum.

Every method answers the same question for a batch of inputs and one target class per
input: how much each input feature counts for the model's output (the class's logit).
The result has the inputs' shape. Captum is imported only when a method runs
(:func:`require_captum` says how to install it when it is missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fedrobust.explain.config import ExplainConfig
from fedrobust.extras import require
from fedrobust.registry import Registry


@dataclass(frozen=True)
class Attribution:
    """The attributions of a batch.

    Parameters
    ----------
    maps : torch.Tensor
        One attribution per input feature, shaped like the inputs.
    delta : torch.Tensor or None
        Integrated gradients: Captum's convergence delta per input, the sum of the
        attributions minus ``f(x) - f(baseline)`` for the target class (0 when the
        path integral is exact); ``None`` for the other methods.
    """

    maps: torch.Tensor
    delta: torch.Tensor | None = None


def require_captum() -> None:
    """Refuse to explain without Captum, saying how to install it.

    Raises
    ------
    FedrobustError
        Naming ``captum`` and the install command.
    """
    require("attribution maps (evaluation.explain, fedrobust explain)", "captum")


class Method:
    """Base of the attribution methods.

    Parameters
    ----------
    cfg : ExplainConfig
        The section (the method's own fields).
    background : torch.Tensor
        Inputs of the server's data: the ``mean`` baseline is their mean, GradientSHAP
        draws its baselines from them.
    """

    name = ""

    def __init__(self, cfg: ExplainConfig, background: torch.Tensor) -> None:
        self.cfg = cfg
        self.background = background

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> Attribution:
        """Attributions of ``model``'s ``target`` logits to the features of ``x``."""
        raise NotImplementedError

    def baseline(self, x: torch.Tensor) -> torch.Tensor:
        """The reference input for each of ``x``: zeros or the background's mean."""
        if self.cfg.baseline == "mean":
            return self.background.mean(0, keepdim=True).expand_as(x).contiguous()
        return torch.zeros_like(x)


METHODS: Registry[type[Method]] = Registry("attribution method", "evaluation.explain.method")


def create_method(cfg: ExplainConfig, background: torch.Tensor) -> Method:
    """The method ``cfg.method`` names; an unknown name lists the known ones."""
    return METHODS.get(cfg.method)(cfg, background)


@METHODS.register("integrated_gradients")
class IntegratedGradientsMethod(Method):
    """Integrated gradients (Sundararajan et al. 2017): the gradient averaged along the
    straight path from the baseline to the input, times the input minus the baseline.
    Complete: the attributions sum to ``f(x) - f(baseline)`` (up to ``delta``)."""

    name = "integrated_gradients"

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> Attribution:
        from captum.attr import IntegratedGradients

        maps, delta = IntegratedGradients(model).attribute(
            x,
            baselines=self.baseline(x),
            target=target,
            n_steps=self.cfg.n_steps,
            internal_batch_size=512,
            return_convergence_delta=True,
        )
        return Attribution(maps.detach(), delta.detach())


@METHODS.register("saliency")
class SaliencyMethod(Method):
    """Saliency (Simonyan et al. 2014): the magnitude of the target logit's gradient."""

    name = "saliency"

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> Attribution:
        from captum.attr import Saliency

        x = x.detach().clone().requires_grad_(True)
        return Attribution(Saliency(model).attribute(x, target=target, abs=True).detach())


@METHODS.register("gradient_shap")
class GradientShapMethod(Method):
    """GradientSHAP (Lundberg & Lee 2017): expected gradients times (input - baseline),
    the baselines drawn from the server's data, the point on the path at random."""

    name = "gradient_shap"

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> Attribution:
        from captum.attr import GradientShap

        maps = GradientShap(model).attribute(
            x, baselines=self.background, n_samples=self.cfg.shap_samples, target=target
        )
        return Attribution(maps.detach())


@METHODS.register("occlusion")
class OcclusionMethod(Method):
    """Occlusion (Zeiler & Fergus 2014): how much the target logit drops when a window
    of the input is replaced by the baseline, slid over the input."""

    name = "occlusion"

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> Attribution:
        from captum.attr import Occlusion

        window, stride = occlusion_window(tuple(x.shape[1:]), self.cfg.window)
        maps = Occlusion(model).attribute(
            x,
            sliding_window_shapes=window,
            strides=stride,
            baselines=self.baseline(x)[:1],
            target=target,
            perturbations_per_eval=8,
        )
        return Attribution(maps.detach())


def occlusion_window(
    shape: tuple[int, ...], side: int | None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The occlusion window and stride for inputs of ``shape``.

    Images (C, H, W): a ``side`` square across all channels; flat inputs (D,): ``side``
    features; sequences (T, F): ``side`` steps of every feature. ``side`` defaults to
    a seventh of the shortest spatial side, at least 2; the stride is half the window.
    """
    spatial = shape[1:] if len(shape) == 3 else shape[:1]
    side = max(2, min(spatial) // 7) if side is None else side
    side = min(side, *spatial)
    step = max(1, side // 2)
    if len(shape) == 3:
        return (shape[0], side, side), (shape[0], step, step)
    if len(shape) == 2:
        return (side, shape[1]), (step, shape[1])
    return (side,), (step,)


def attribute_batches(
    method: Method, model: nn.Module, x: torch.Tensor, target: torch.Tensor, batch: int = 64
) -> Attribution:
    """:meth:`Method.attribute` over ``x`` in batches of ``batch`` (bounded memory)."""
    maps: list[torch.Tensor] = []
    deltas: list[Any] = []
    for start in range(0, len(x), batch):
        part = method.attribute(model, x[start : start + batch], target[start : start + batch])
        maps.append(part.maps)
        deltas.append(part.delta)
    if not maps:
        return Attribution(torch.zeros_like(x))
    delta = None if deltas[0] is None else torch.cat(deltas)
    return Attribution(torch.cat(maps), delta)
