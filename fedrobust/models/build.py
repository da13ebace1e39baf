"""Build the model a scenario's ``model`` section describes.

Kept apart from the registry so the scenario schema can ask the registry for known
names without an import circle (schema -> registry; build -> schema and registry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from fedrobust.errors import FedrobustError
from fedrobust.models.layers import Normalized, initialise
from fedrobust.models.registry import InputSpec, create_model, model_options
from fedrobust.models.transfer import freeze, frozen_count, load_pretrained, reset_head

if TYPE_CHECKING:  # the schema asks the models package for names; no import back at run time
    from fedrobust.data.config import NormalizeConfig
    from fedrobust.models.config import ModelConfig


def build_model(cfg: ModelConfig, spec: InputSpec) -> nn.Module:
    """The model a scenario's ``model`` section describes, for inputs of ``spec``, with
    the parameters under ``model.freeze`` frozen (``requires_grad`` off)."""
    options: dict[str, object] = {"hidden": cfg.hidden, "channels": cfg.channels}
    accepted = model_options(cfg.name)
    for name in ("activation", "dropout", "checkpointing", "bidirectional", "heads", "layers"):
        if name in accepted:
            options[name] = getattr(cfg, name)
    model = initialise(create_model(cfg.name, spec, **options), cfg.init, cfg.activation)
    if cfg.normalize is not None:
        model = _normalized(model, cfg.normalize, spec)
    if cfg.freeze:  # structural: every copy of the model trains the same parameters
        freeze(model, cfg.freeze)
    return model


def _normalized(model: nn.Module, cfg: NormalizeConfig, spec: InputSpec) -> nn.Module:
    channels = spec.shape[0] if len(spec.shape) == 3 else None
    if channels != len(cfg.mean):
        raise FedrobustError(
            "model.normalize.mean",
            f"has {len(cfg.mean)} values but the inputs have shape {spec.shape} "
            "(one value per image channel)",
        )
    return Normalized(model, cfg.mean, cfg.std)


def initial_model(cfg: ModelConfig, spec: InputSpec, seed: int) -> tuple[nn.Module, dict[str, Any]]:
    """The server's initial global model, and the figures to record with round 0.

    Builds the model (which freezes ``cfg.freeze``), loads ``cfg.init_from`` and resets
    the head when ``cfg.reset_head``. The figures are ``{"transfer": {...}}`` (the
    :class:`TransferReport` summary, ``frozen`` values and the reset head) or empty.
    """
    model = build_model(cfg, spec)
    figures: dict[str, Any] = {}
    if cfg.init_from is not None:
        figures = load_pretrained(model, cfg.init_from).summary()
    if cfg.reset_head:
        figures["reset_head"] = reset_head(model, seed)
    if cfg.freeze:
        figures["frozen"] = frozen_count(model)
    return model, {"transfer": figures} if figures else {}
