"""A multilayer perceptron over flattened inputs."""

from __future__ import annotations

import math

import torch
from torch import nn

from fedrobust.models.registry import InputSpec, register_model


class MLP(nn.Module):
    """Flatten, then Linear + ReLU per hidden width, then the classifier.

    Parameters
    ----------
    spec : InputSpec
        Input shape and number of classes.
    hidden : list[int]
        Hidden layer widths.
    """

    def __init__(self, spec: InputSpec, hidden: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width_in = math.prod(spec.shape)
        for size in hidden:
            layers += [nn.Linear(width_in, size), nn.ReLU()]
            width_in = size
        layers.append(nn.Linear(width_in, spec.num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_model("mlp")
def build_mlp(spec: InputSpec, hidden: list[int] | None = None) -> nn.Module:
    """The default MLP: two hidden layers of 128 and 64."""
    return MLP(spec, hidden=hidden or [128, 64])
