"""Model registry and the bundled models (importing registers them)."""

from fedrobust.models import cnn, mlp, resnet  # noqa: F401  (register)
from fedrobust.models.registry import (
    InputSpec,
    build_model,
    create_model,
    known_models,
    model_options,
    register_model,
)

__all__ = [
    "InputSpec",
    "build_model",
    "create_model",
    "known_models",
    "model_options",
    "register_model",
]
