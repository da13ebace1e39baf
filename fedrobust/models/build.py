"""Build the model a scenario's ``model`` section describes.

Kept apart from the registry so the scenario schema can ask the registry for known
names without an import circle (schema -> registry; build -> schema and registry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from fedrobust.errors import FedrobustError
from fedrobust.models.layers import Normalized, initialise
from fedrobust.models.registry import InputSpec, create_model, model_options

if TYPE_CHECKING:  # the schema asks the models package for names; no import back at run time
    from fedrobust.models.config import ModelConfig


def build_model(cfg: ModelConfig, spec: InputSpec) -> nn.Module:
    """The model a scenario's ``model`` section describes, for inputs of ``spec``."""
    options: dict[str, object] = {"hidden": cfg.hidden, "channels": cfg.channels}
    accepted = model_options(cfg.name)
    for name in ("activation", "dropout", "checkpointing"):
        if name in accepted:
            options[name] = getattr(cfg, name)
    model = initialise(create_model(cfg.name, spec, **options), cfg.init, cfg.activation)
    if cfg.normalize is None:
        return model
    channels = spec.shape[0] if len(spec.shape) == 3 else None
    if channels != len(cfg.normalize.mean):
        raise FedrobustError(
            "model.normalize.mean",
            f"has {len(cfg.normalize.mean)} values but the inputs have shape {spec.shape} "
            "(one value per image channel)",
        )
    return Normalized(model, cfg.normalize.mean, cfg.normalize.std)
