"""Local training: the loop, its plugins, losses and learning-rate schedules."""

from fedrobust.train.local import (
    EvalResult,
    TrainResult,
    balanced_class_weights,
    evaluate,
    local_train,
    make_optimizer,
)
from fedrobust.train.plugins import Augment, L1Penalty, ProximalTerm, TrainPlugin
from fedrobust.train.schedules import round_lr

__all__ = [
    "Augment",
    "EvalResult",
    "L1Penalty",
    "ProximalTerm",
    "TrainPlugin",
    "TrainResult",
    "balanced_class_weights",
    "evaluate",
    "local_train",
    "make_optimizer",
    "round_lr",
]
