"""Local training: the loop, its plugins, losses and learning-rate schedules; the ``train``
section in ``config``.

Names load on first use (PEP 562), so importing a submodule such as ``config`` does not pull in
the heavy ones, nor can they, importing :mod:`fedrobust.scenario`, cycle back into it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedrobust.lazy import lazy_getattr

if TYPE_CHECKING:
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

_EXPORTS = {
    "EvalResult": "fedrobust.train.local",
    "TrainResult": "fedrobust.train.local",
    "balanced_class_weights": "fedrobust.train.local",
    "evaluate": "fedrobust.train.local",
    "local_train": "fedrobust.train.local",
    "make_optimizer": "fedrobust.train.local",
    "Augment": "fedrobust.train.plugins",
    "L1Penalty": "fedrobust.train.plugins",
    "ProximalTerm": "fedrobust.train.plugins",
    "TrainPlugin": "fedrobust.train.plugins",
    "round_lr": "fedrobust.train.schedules",
}

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


__getattr__ = lazy_getattr(__name__, _EXPORTS)
