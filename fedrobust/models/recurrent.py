"""GRU and LSTM classifiers for sequences (T, F), built from ``nn.Linear`` cells.

``nn.GRU`` / ``nn.LSTM`` keep their weights inside one fused kernel, which neither
Opacus's hooks nor our ghost clipping (:mod:`fedrobust.privacy.fastclip`) can see.
Here each layer is two ``nn.Linear`` maps: the input map runs once over all T steps,
the recurrent map once per step. Every per-example gradient is then a sum over
positions (steps) of a linear layer's, which both engines compute: Opacus accumulates
the grad samples of a module called several times, and ``fast`` treats the calls as
more positions of the same example. The models are always built this way (with or
without DP-SGD), so a checkpoint, an update and an exported model look the same
either way; the price is a Python loop over the steps (T = 28 for sequential MNIST).

The equations are PyTorch's (``nn.GRUCell``, ``nn.LSTMCell``): Cho et al. 2014,
https://arxiv.org/abs/1406.1078; Hochreiter & Schmidhuber 1997. Opacus's ``DPLSTM``
and ``DPGRU`` do the same with a subclass of ``nn.Linear``, which ``fast`` would not
cover (it matches exact types).
"""

from __future__ import annotations

import torch
from torch import nn

from fedrobust.models.layers import sequence_shape
from fedrobust.models.registry import InputSpec, register_model

#: Gate blocks per cell: LSTM input, forget, cell, output; GRU reset, update, new.
GATES = {"lstm": 4, "gru": 3}


class RecurrentLayer(nn.Module):
    """One recurrent layer over a whole sequence, in one direction.

    Parameters
    ----------
    kind : str
        lstm | gru.
    features : int
        Input features per step.
    hidden : int
        Hidden state size.
    reverse : bool
        Read the sequence from its last step to its first.
    """

    def __init__(self, kind: str, features: int, hidden: int, reverse: bool = False) -> None:
        super().__init__()
        self.kind, self.hidden, self.reverse = kind, hidden, reverse
        self.input = nn.Linear(features, GATES[kind] * hidden)
        self.recurrent = nn.Linear(hidden, GATES[kind] * hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> the hidden states (B, T, hidden), in the sequence's order."""
        projected = self.input(x)  # every step at once
        batch, steps = x.shape[0], x.shape[1]
        h = x.new_zeros(batch, self.hidden)
        c = x.new_zeros(batch, self.hidden)
        order = range(steps - 1, -1, -1) if self.reverse else range(steps)
        states: list[torch.Tensor] = []
        for t in order:
            gi, gh = projected[:, t], self.recurrent(h)
            if self.kind == "lstm":
                i, f, g, o = (gi + gh).chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            else:
                i_r, i_z, i_n = gi.chunk(3, dim=1)
                h_r, h_z, h_n = gh.chunk(3, dim=1)
                r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
                h = (1 - z) * torch.tanh(i_n + r * h_n) + z * h
            states.append(h)
        if self.reverse:
            states.reverse()
        return torch.stack(states, dim=1)


class RecurrentClassifier(nn.Module):
    """Stacked (bi)directional GRU or LSTM layers, then a linear classifier.

    The classifier reads the last step's state of the forward direction and, when
    bidirectional, the first step's state of the backward one (each has read the
    whole sequence).

    Parameters
    ----------
    kind : str
        lstm | gru.
    spec : InputSpec
        Input shape (T, F) and number of classes.
    hidden : list[int]
        Hidden size of each stacked layer.
    dropout : float
        Dropout between layers and before the classifier.
    bidirectional : bool
        Add a backward layer beside each forward one (outputs concatenated).
    """

    def __init__(
        self, kind: str, spec: InputSpec, hidden: list[int], dropout: float, bidirectional: bool
    ) -> None:
        super().__init__()
        _, features = sequence_shape(spec.shape, kind)
        directions = 2 if bidirectional else 1
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList()
        width = features
        for size in hidden:
            self.forward_layers.append(RecurrentLayer(kind, width, size))
            if bidirectional:
                self.backward_layers.append(RecurrentLayer(kind, width, size, reverse=True))
            width = size * directions
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, layer in enumerate(self.forward_layers):
            states = layer(x)
            if self.backward_layers:
                states = torch.cat([states, self.backward_layers[index](x)], dim=2)
            x = self.dropout(states)
        size = self.forward_layers[-1].hidden
        last = x[:, -1, :size]
        if self.backward_layers:
            last = torch.cat([last, x[:, 0, size:]], dim=1)
        return self.classifier(last)


@register_model("lstm", inputs="sequence")
def build_lstm(
    spec: InputSpec,
    hidden: list[int] | None = None,
    dropout: float = 0.0,
    bidirectional: bool = False,
) -> nn.Module:
    """The default LSTM: one layer of 64."""
    return RecurrentClassifier("lstm", spec, hidden or [64], dropout, bidirectional)


@register_model("gru", inputs="sequence")
def build_gru(
    spec: InputSpec,
    hidden: list[int] | None = None,
    dropout: float = 0.0,
    bidirectional: bool = False,
) -> nn.Module:
    """The default GRU: one layer of 64."""
    return RecurrentClassifier("gru", spec, hidden or [64], dropout, bidirectional)
