"""A small CNN with GroupNorm: Opacus-compatible as it is (no BatchNorm to fix)."""

from __future__ import annotations

import torch
from torch import nn

from fedrobust.models.layers import group_norm, image_shape, make_activation, mlp_head
from fedrobust.models.registry import InputSpec, register_model


class CNN(nn.Module):
    """Conv blocks (conv 3x3, GroupNorm, activation, 2x2 max-pool), then an MLP head.

    Pooling stops once the feature map would drop below 2x2, so the same model
    serves 28x28 MNIST and 8x8 digits.

    Parameters
    ----------
    spec : InputSpec
        Input shape (C, H, W) and number of classes.
    channels : list[int]
        Output channels of each conv block.
    hidden : list[int]
        Widths of the fully connected layers before the classifier.
    activation : str
        relu | leaky_relu | prelu | gelu | tanh.
    dropout : float
        Dropout before each fully connected layer.
    """

    def __init__(
        self,
        spec: InputSpec,
        channels: list[int],
        hidden: list[int],
        activation: str,
        dropout: float,
    ) -> None:
        super().__init__()
        in_ch, height, width = image_shape(spec.shape, "cnn")
        layers: list[nn.Module] = []
        for out_ch in channels:
            layers += [
                nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1),
                group_norm(out_ch),
                make_activation(activation),
            ]
            if min(height, width) >= 4:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.classifier = mlp_head(
            in_ch * height * width, hidden, spec.num_classes, activation, dropout
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("cnn", inputs="image")
def build_cnn(
    spec: InputSpec,
    channels: list[int] | None = None,
    hidden: list[int] | None = None,
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Module:
    """The default CNN: 2 conv blocks of 16 and 32 channels, one hidden layer of 64."""
    return CNN(spec, channels or [16, 32], hidden or [64], activation, dropout)
