"""Model registry: ``register_model`` / ``create_model``; unknown names fail loudly."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from fedrobust.errors import FedrobustError


@dataclass(frozen=True)
class InputSpec:
    """What the data tells the model: input shape (C, H, W) and number of classes."""

    shape: tuple[int, ...]
    num_classes: int


ModelFactory = Callable[..., nn.Module]
_MODELS: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Register ``factory(spec, **options) -> nn.Module`` under ``name``."""

    def decorator(factory: ModelFactory) -> ModelFactory:
        if name in _MODELS:
            raise ValueError(f"model '{name}' is already registered")
        _MODELS[name] = factory
        return factory

    return decorator


def known_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def create_model(name: str, spec: InputSpec, **options: object) -> nn.Module:
    """Build a registered model for inputs of ``spec``.

    Options that are ``None`` are dropped so each factory keeps its own defaults.
    """
    if name not in _MODELS:
        raise FedrobustError(
            "model.name", f"unknown model '{name}'; known: {', '.join(known_models())}"
        )
    kwargs = {key: value for key, value in options.items() if value is not None}
    for key in sorted(set(kwargs) - set(model_options(name))):
        raise FedrobustError(f"model.{key}", f"does not apply to model '{name}'")
    return _MODELS[name](spec, **kwargs)


def model_options(name: str) -> list[str]:
    """The keyword options the factory registered as ``name`` accepts."""
    params = list(inspect.signature(_MODELS[name]).parameters.values())[1:]
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
