"""Model registry and the bundled models (importing registers them).

``build_model(cfg, spec)`` lives in :mod:`fedrobust.models.build`.
"""

from fedrobust.models import cnn, mlp, recurrent, resnet, transformer  # noqa: F401  (register)
from fedrobust.models.registry import (
    InputSpec,
    create_model,
    known_models,
    model_inputs,
    model_options,
    register_model,
)

__all__ = [
    "InputSpec",
    "create_model",
    "known_models",
    "model_inputs",
    "model_options",
    "register_model",
]
