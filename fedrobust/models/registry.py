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
    """What the data tells the model: input shape and number of classes.

    The shape is (C, H, W) for images, (T, F) for sequences (T steps of F features,
    ``data.sequence``) and (D,) for feature vectors.
    """

    shape: tuple[int, ...]
    num_classes: int


ModelFactory = Callable[..., nn.Module]
MODELS: Registry[ModelFactory] = Registry("model", "model.name")
#: The inputs each model needs: ``image`` (C, H, W), ``sequence`` (T, F) or ``any``.
INPUT_KINDS = ("any", "image", "sequence")
_INPUTS: dict[str, str] = {}


def register_model(name: str, inputs: str = "any") -> Callable[[ModelFactory], ModelFactory]:
    """Register ``factory(spec, **options) -> nn.Module`` under ``name``.

    ``inputs`` says what it needs (:data:`INPUT_KINDS`): the scenario refuses an image
    model on sequences and a sequence model on images before any data is loaded.
    """
    if inputs not in INPUT_KINDS:
        raise ValueError(f"unknown input kind '{inputs}'; known: {', '.join(INPUT_KINDS)}")
    register = MODELS.register(name)

    def decorator(factory: ModelFactory) -> ModelFactory:
        registered = register(factory)  # a name taken twice fails here, before any record
        _INPUTS[name] = inputs
        return registered

    return decorator


def model_inputs(name: str) -> str:
    """What the model ``name`` needs: ``image``, ``sequence`` or ``any``."""
    MODELS.get(name)  # an unknown name fails with the known ones
    return _INPUTS.get(name, "any")


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
