"""Continual learning: task splits and shifts, replay, EWC, LwF and forgetting metrics.

The library core; wiring it into the federated client and server comes separately.
"""

from fedrobust.continual.ewc import EWC, fisher_diagonal, merge_fisher, snapshot
from fedrobust.continual.lwf import LwF, distillation_loss
from fedrobust.continual.metrics import ContinualMetrics
from fedrobust.continual.replay import Replay, ReservoirBuffer
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

__all__ = [
    "EWC",
    "ContinualMetrics",
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
