"""Local training: the loop and its plugins."""

from fedrobust.train.local import (
    ProximalTerm,
    TrainPlugin,
    TrainResult,
    evaluate,
    local_train,
    make_optimizer,
)

__all__ = [
    "ProximalTerm",
    "TrainPlugin",
    "TrainResult",
    "evaluate",
    "local_train",
    "make_optimizer",
]
