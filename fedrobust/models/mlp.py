"""A multilayer perceptron over flattened inputs."""

from __future__ import annotations

import math

import torch
from torch import nn

from fedrobust.models.layers import mlp_head
from fedrobust.models.registry import InputSpec, register_model


class MLP(nn.Module):
    """Flatten, then (dropout) Linear + activation per hidden width, then the classifier.

    Parameters
    ----------
    spec : InputSpec
        Input shape and number of classes.
    hidden : list[int]
        Hidden layer widths.
    activation : str
        relu | leaky_relu | prelu | gelu | tanh.
    dropout : float
        Dropout before each linear layer.
    """

    def __init__(self, spec: InputSpec, hidden: list[int], activation: str, dropout: float) -> None:
        super().__init__()
        self.net = mlp_head(math.prod(spec.shape), hidden, spec.num_classes, activation, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_model("mlp")
def build_mlp(
    spec: InputSpec, hidden: list[int] | None = None, activation: str = "relu", dropout: float = 0.0
) -> nn.Module:
    """The default MLP: two hidden layers of 128 and 64."""
    return MLP(spec, hidden or [128, 64], activation, dropout)
