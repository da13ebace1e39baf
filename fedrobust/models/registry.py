"""Model registry: ``register_model`` / ``create_model``; unknown names fail loudly."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from fedrobust.errors import FedrobustError
from fedrobust.registry import Registry


@dataclass(frozen=True)
class InputSpec:
    """What the data tells the model: input shape (C, H, W) and number of classes."""

    shape: tuple[int, ...]
    num_classes: int


ModelFactory = Callable[..., nn.Module]
MODELS: Registry[ModelFactory] = Registry("model", "model.name")


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Register ``factory(spec, **options) -> nn.Module`` under ``name``."""
    return MODELS.register(name)


def known_models() -> list[str]:
    """Registered model names, sorted."""
    return MODELS.names()


def create_model(name: str, spec: InputSpec, **options: object) -> nn.Module:
    """Build a registered model for inputs of ``spec``.

    Options that are ``None`` are dropped so each factory keeps its own defaults.
    """
    factory = MODELS.get(name)
    kwargs = {key: value for key, value in options.items() if value is not None}
    for key in sorted(set(kwargs) - set(model_options(name))):
        raise FedrobustError(f"model.{key}", f"does not apply to model '{name}'")
    return factory(spec, **kwargs)


def model_options(name: str) -> list[str]:
    """The keyword options the factory registered as ``name`` accepts."""
    params = list(inspect.signature(MODELS.get(name)).parameters.values())[1:]
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
