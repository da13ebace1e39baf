"""Building blocks shared by the models: activations, GroupNorm sizing, initialisation."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = ("relu", "leaky_relu", "prelu", "gelu", "tanh")


def image_shape(shape: tuple[int, ...], model: str) -> tuple[int, int, int]:
    """``shape`` as (C, H, W), or a clear error for a model that needs images."""
    if len(shape) != 3:
        raise ValueError(f"{model} needs image inputs (C, H, W), got shape {shape}")
    return shape[0], shape[1], shape[2]


def sequence_shape(shape: tuple[int, ...], model: str) -> tuple[int, int]:
    """``shape`` as (T, F): time steps and features per step, or a clear error."""
    if len(shape) != 2:
        hint = ""
        if len(shape) == 3:
            hint = " (images: set data.sequence: rows to read them row by row)"
        raise ValueError(f"{model} needs sequence inputs (T, F), got shape {shape}{hint}")
    return shape[0], shape[1]


def make_activation(name: str) -> nn.Module:
    """A fresh activation module: relu | leaky_relu | prelu | gelu | tanh."""
    factories = {
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(0.01),
        "prelu": nn.PReLU,
        "gelu": nn.GELU,
        "tanh": nn.Tanh,
    }
    if name not in factories:
        raise ValueError(f"unknown activation '{name}'; known: {', '.join(ACTIVATIONS)}")
    return factories[name]()


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with the largest of 8, 4, 2, 1 groups dividing ``channels`` (Opacus-safe)."""
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


def initialise(model: nn.Module, scheme: str, activation: str = "relu") -> nn.Module:
    """Re-initialise conv and linear weights: default (keep PyTorch's) | kaiming | xavier.

    Biases are zeroed for kaiming and xavier; normalisation layers are left alone.
    """
    if scheme == "default":
        return model
    nonlinearity = "leaky_relu" if activation in ("leaky_relu", "prelu") else "relu"
    gain = nn.init.calculate_gain("tanh" if activation == "tanh" else "relu")
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(module.weight, nonlinearity=nonlinearity)
            elif scheme == "xavier":
                nn.init.xavier_uniform_(module.weight, gain=gain)
            else:
                raise ValueError(f"unknown init '{scheme}'; known: default, kaiming, xavier")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def mlp_head(
    width_in: int, hidden: list[int], num_classes: int, activation: str, dropout: float
) -> nn.Sequential:
    """Flatten, then (dropout, linear, activation) per hidden width, then the classifier."""
    layers: list[nn.Module] = [nn.Flatten()]
    for size in hidden:
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(width_in, size), make_activation(activation)]
        width_in = size
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width_in, num_classes))
    return nn.Sequential(*layers)


class Normalized(nn.Module):
    """Standardises inputs per channel, ``(x - mean) / std``, then runs ``net``.

    ``mean`` and ``std`` are buffers: they travel with the weights, so every client and
    the server use the same values.
    """

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        shape = (1, len(mean), 1, 1)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(shape))
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)
