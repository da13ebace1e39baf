"""The ``model`` section: a registered architecture and its options."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from fedrobust.config.base import Section, check_registered, field_error
from fedrobust.data.config import NormalizeConfig


class ModelConfig(Section):
    """Network architecture, from the model registry.

    Parameters
    ----------
    name : str
        A registered model name (``cnn``, ``mlp``, ``resnet``; for sequences ``gru``,
        ``lstm``, ``transformer``).
    hidden : list[int]
        Hidden widths: the MLP's layers, the CNN's fully connected layer, the stacked
        GRU/LSTM layers' hidden sizes, or the transformer's one width.
    channels : list[int]
        Convolution channels: one conv block each (cnn), one residual stage each (resnet).
    activation : str
        relu | leaky_relu | prelu | gelu | tanh.
    dropout : float
        Dropout probability before each hidden fully connected layer and the classifier.
    init : str
        Weight initialisation: default (PyTorch's) | kaiming | xavier.
    checkpointing : bool
        Gradient checkpointing (resnet): recompute activations in the backward pass to
        save memory.
    normalize : NormalizeConfig
        Optional per-channel input standardisation inside the model.
    init_from : str
        Start from pre-trained weights: a run directory (its ``model.pt``) or a ``.pt``
        state dict. Every tensor whose name and shape match is loaded; the rest keep
        their fresh initialisation (metrics.json ``initial.transfer`` lists them). A
        relative path is relative to the directory the command runs from.
    freeze : list[str]
        Parameter-name prefixes (module names such as ``features`` or ``net.0``) that
        do not train, on the server and every client.
    reset_head : bool
        Re-initialise the classifier (the last linear layer) after loading
        ``init_from``, seeded by the scenario's seed.
    bidirectional : bool
        gru, lstm: a backward layer beside each forward one.
    heads : int
        transformer: attention heads (default 4; must divide the width).
    layers : int
        transformer: encoder blocks (default 2).
    """

    name: str = "cnn"
    hidden: list[Annotated[int, Field(ge=1)]] | None = None
    channels: list[Annotated[int, Field(ge=1)]] | None = None
    activation: Literal["relu", "leaky_relu", "prelu", "gelu", "tanh"] = "relu"
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    init: Literal["default", "kaiming", "xavier"] = "default"
    checkpointing: bool = False
    normalize: NormalizeConfig | None = None
    init_from: Annotated[str, Field(min_length=1)] | None = None
    freeze: list[Annotated[str, Field(min_length=1)]] = []
    reset_head: bool = False
    bidirectional: bool = False
    heads: Annotated[int, Field(ge=1)] | None = None
    layers: Annotated[int, Field(ge=1, le=24)] | None = None

    @field_validator("name")
    @classmethod
    def _registered(cls, value: str) -> str:
        from fedrobust.models import known_models

        return check_registered(value, "model", known_models())

    def applicable(self) -> set[str]:
        from fedrobust.models import model_options

        accepted = set(type(self).model_fields) & set(model_options(self.name))
        return {"name", "init", "normalize", "init_from", "freeze", "reset_head"} | accepted

    @model_validator(mode="after")
    def _options_fit_model(self) -> ModelConfig:
        self.check_applicable(f"model '{self.name}'")
        if self.reset_head and self.init_from is None:
            raise field_error("reset_head", "needs init_from (there is no head to reset)")
        return self
