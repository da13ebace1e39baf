"""Continual learning: task splits and shifts, replay (mix, union, class-balanced), DER and
DER++, ER-ACE, EWC, LwF and forgetting metrics; the ``continual`` section in ``config``.

Names load on first use (PEP 562), so importing a submodule such as ``config`` does not pull in
the heavy ones, nor can they, importing :mod:`fedrobust.scenario`, cycle back into it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedrobust.lazy import lazy_getattr

if TYPE_CHECKING:
    from fedrobust.continual.der import DarkReplay, der_loss
    from fedrobust.continual.er_ace import ERACE, AsymmetricHead, asymmetric_logits
    from fedrobust.continual.ewc import EWC, fisher_diagonal, merge_fisher, snapshot
    from fedrobust.continual.lwf import LwF, distillation_loss
    from fedrobust.continual.metrics import ContinualMetrics
    from fedrobust.continual.replay import Replay, ReservoirBuffer, balanced_union
    from fedrobust.continual.tasks import (
        MaskedHead,
        TaskMask,
        TaskSchedule,
        class_split,
        domain_transform,
        permute_features,
        rotate_images,
        task_mask_logits,
    )

_EXPORTS = {
    "DarkReplay": "fedrobust.continual.der",
    "der_loss": "fedrobust.continual.der",
    "ERACE": "fedrobust.continual.er_ace",
    "AsymmetricHead": "fedrobust.continual.er_ace",
    "asymmetric_logits": "fedrobust.continual.er_ace",
    "balanced_union": "fedrobust.continual.replay",
    "EWC": "fedrobust.continual.ewc",
    "fisher_diagonal": "fedrobust.continual.ewc",
    "merge_fisher": "fedrobust.continual.ewc",
    "snapshot": "fedrobust.continual.ewc",
    "LwF": "fedrobust.continual.lwf",
    "distillation_loss": "fedrobust.continual.lwf",
    "ContinualMetrics": "fedrobust.continual.metrics",
    "Replay": "fedrobust.continual.replay",
    "ReservoirBuffer": "fedrobust.continual.replay",
    "MaskedHead": "fedrobust.continual.tasks",
    "TaskMask": "fedrobust.continual.tasks",
    "TaskSchedule": "fedrobust.continual.tasks",
    "class_split": "fedrobust.continual.tasks",
    "domain_transform": "fedrobust.continual.tasks",
    "permute_features": "fedrobust.continual.tasks",
    "rotate_images": "fedrobust.continual.tasks",
    "task_mask_logits": "fedrobust.continual.tasks",
}

__all__ = [
    "AsymmetricHead",
    "DarkReplay",
    "ERACE",
    "asymmetric_logits",
    "balanced_union",
    "der_loss",
    "ContinualMetrics",
    "EWC",
    "LwF",
    "MaskedHead",
    "Replay",
    "ReservoirBuffer",
    "TaskMask",
    "TaskSchedule",
    "class_split",
    "distillation_loss",
    "domain_transform",
    "fisher_diagonal",
    "merge_fisher",
    "permute_features",
    "rotate_images",
    "snapshot",
    "task_mask_logits",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
