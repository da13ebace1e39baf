"""A small transformer encoder for sequences (T, F), built from ``nn.Linear`` and
``nn.LayerNorm`` only.

Linear input projection, a learned positional embedding, ``layers`` pre-norm encoder
blocks (multi-head self-attention, then a feed-forward layer of twice the width, each
with a residual connection), a final LayerNorm, mean pooling over the steps and a
linear classifier (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762; pre-norm as
Xiong et al. 2020, https://arxiv.org/abs/2002.04745).

Attention is written out (query/key/value maps, softmax) rather than taken from
``nn.MultiheadAttention``, whose fused ``in_proj_weight`` neither our ghost clipping nor
Opacus's hooks can see without swapping in ``DPMultiheadAttention``. The positional
embedding is a bias-free ``nn.Linear`` applied to one-hot step indices (its weight
column ``t`` is step ``t``'s embedding), so every trainable parameter sits in a layer
that both DP-SGD engines clip per example (:mod:`fedrobust.privacy.fastclip`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fedrobust.errors import FedrobustError
from fedrobust.models.layers import make_activation, sequence_shape
from fedrobust.models.registry import InputSpec, register_model


class EncoderBlock(nn.Module):
    """Pre-norm self-attention and feed-forward, each added to its input.

    Parameters
    ----------
    width : int
        Model width (divisible by ``heads``).
    heads : int
        Attention heads.
    activation : str
        The feed-forward activation.
    dropout : float
        Dropout on each branch before it is added back.
    """

    def __init__(self, width: int, heads: int, activation: str, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.feed_forward_norm = nn.LayerNorm(width)
        self.feed_forward = nn.Sequential(
            nn.Linear(width, 2 * width), make_activation(activation), nn.Linear(2 * width, width)
        )
        self.dropout = nn.Dropout(dropout)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-head scaled dot-product self-attention over the steps of ``x`` (B, T, D)."""
        batch, steps, width = x.shape
        head = width // self.heads
        q, k, v = self.qkv(x).reshape(batch, steps, 3, self.heads, head).permute(2, 0, 3, 1, 4)
        weights = (q @ k.transpose(-2, -1) / math.sqrt(head)).softmax(dim=-1)
        mixed = (weights @ v).transpose(1, 2).reshape(batch, steps, width)
        return self.out(mixed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attend(self.attention_norm(x)))
        return x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))


class TransformerClassifier(nn.Module):
    """Input projection plus positional embedding, encoder blocks, mean pooling, classifier.

    Parameters
    ----------
    spec : InputSpec
        Input shape (T, F) and number of classes.
    width : int
        Model width.
    heads : int
        Attention heads per block.
    layers : int
        Encoder blocks.
    activation : str
        The feed-forward activation.
    dropout : float
        Dropout inside the blocks.
    """

    def __init__(
        self,
        spec: InputSpec,
        width: int,
        heads: int,
        layers: int,
        activation: str,
        dropout: float,
    ) -> None:
        super().__init__()
        steps, features = sequence_shape(spec.shape, "transformer")
        self.project = nn.Linear(features, width)
        self.position = nn.Linear(steps, width, bias=False)
        self.blocks = nn.ModuleList(
            EncoderBlock(width, heads, activation, dropout) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(width)
        self.classifier = nn.Linear(width, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps = x.shape[0], x.shape[1]
        one_hot = torch.eye(steps, dtype=x.dtype, device=x.device).expand(batch, steps, steps)
        h = self.project(x) + self.position(one_hot)
        for block in self.blocks:
            h = block(h)
        return self.classifier(self.norm(h).mean(dim=1))


@register_model("transformer", inputs="sequence")
def build_transformer(
    spec: InputSpec,
    hidden: list[int] | None = None,
    activation: str = "relu",
    dropout: float = 0.0,
    heads: int = 4,
    layers: int = 2,
) -> nn.Module:
    """The default transformer: width 64, 4 heads, 2 encoder blocks.

    Raises
    ------
    FedrobustError
        Naming ``model.hidden`` (more than one width) or ``model.heads`` (a width the
        heads do not divide).
    """
    widths = hidden or [64]
    if len(widths) != 1:
        raise FedrobustError(
            "model.hidden", f"the transformer takes one width (its model dimension), got {widths}"
        )
    if widths[0] % heads:
        raise FedrobustError(
            "model.heads", f"{heads} heads do not divide the width {widths[0]} (model.hidden)"
        )
    return TransformerClassifier(spec, widths[0], heads, layers, activation, dropout)
