"""The ``model`` section: a registered architecture and its options."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from fedrobust.config.base import Section, check_registered
from fedrobust.data.config import NormalizeConfig


class ModelConfig(Section):
    """Network architecture, from the model registry.

    Parameters
    ----------
    name : str
        A registered model name (``cnn``, ``mlp``, ``resnet``).
    hidden : list[int]
        Hidden widths: the MLP's layers, or the CNN's fully connected layer.
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
    """

    name: str = "cnn"
    hidden: list[Annotated[int, Field(ge=1)]] | None = None
    channels: list[Annotated[int, Field(ge=1)]] | None = None
    activation: Literal["relu", "leaky_relu", "prelu", "gelu", "tanh"] = "relu"
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    init: Literal["default", "kaiming", "xavier"] = "default"
    checkpointing: bool = False
    normalize: NormalizeConfig | None = None

    @field_validator("name")
    @classmethod
    def _registered(cls, value: str) -> str:
        from fedrobust.models import known_models

        return check_registered(value, "model", known_models())

    def applicable(self) -> set[str]:
        from fedrobust.models import model_options

        accepted = set(type(self).model_fields) & set(model_options(self.name))
        return {"name", "init", "normalize"} | accepted

    @model_validator(mode="after")
    def _options_fit_model(self) -> ModelConfig:
        self.check_applicable(f"model '{self.name}'")
        return self
