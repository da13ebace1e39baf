"""A small residual network with GroupNorm: skip connections against vanishing gradients.

He et al. 2016, https://arxiv.org/abs/1512.03385 (basic blocks); GroupNorm instead of
BatchNorm (Wu & He 2018) so Opacus can use it as it is.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from fedrobust.models.layers import group_norm, image_shape, make_activation, mlp_head
from fedrobust.models.registry import InputSpec, register_model


class BasicBlock(nn.Module):
    """conv-GN-act-conv-GN plus a (projected) skip connection, then act."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, activation: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            group_norm(out_ch),
            make_activation(activation),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            group_norm(out_ch),
        )
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.skip = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), group_norm(out_ch)
            )
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class ResNet(nn.Module):
    """Stem conv, one basic block per entry of ``channels`` (stride 2 while the map is
    at least 4x4), global average pooling, MLP head.

    Parameters
    ----------
    spec : InputSpec
        Input shape (C, H, W) and number of classes.
    channels : list[int]
        Channels of each residual block.
    hidden : list[int]
        Fully connected widths before the classifier.
    activation : str
        Activation name.
    dropout : float
        Dropout in the head.
    checkpointing : bool
        Recompute each block's activations in the backward pass (saves memory).
    """

    def __init__(
        self,
        spec: InputSpec,
        channels: list[int],
        hidden: list[int],
        activation: str,
        dropout: float,
        checkpointing: bool,
    ) -> None:
        super().__init__()
        in_ch, height, _ = image_shape(spec.shape, "resnet")
        self.stem = nn.Sequential(
            nn.Conv2d(in_ch, channels[0], 3, padding=1, bias=False),
            group_norm(channels[0]),
            make_activation(activation),
        )
        blocks = []
        width = channels[0]
        for out_ch in channels:
            stride = 2 if height >= 4 and out_ch != channels[0] else 1
            height = (height + 1) // stride if stride == 2 else height
            blocks.append(BasicBlock(width, out_ch, stride, activation))
            width = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = mlp_head(width, hidden, spec.num_classes, activation, dropout)
        self.checkpointing = checkpointing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            if self.checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.head(self.pool(x))


@register_model("resnet", inputs="image")
def build_resnet(
    spec: InputSpec,
    channels: list[int] | None = None,
    hidden: list[int] | None = None,
    activation: str = "relu",
    dropout: float = 0.0,
    checkpointing: bool = False,
) -> nn.Module:
    """Default: blocks of 16, 32, 64 channels, no hidden layer in the head."""
    return ResNet(spec, channels or [16, 32, 64], hidden or [], activation, dropout, checkpointing)
