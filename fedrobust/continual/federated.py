"""Continual learning in federated rounds: which task a round trains, on what data, and
how the server scores every task.

The client side keeps its method state (replay buffer, EWC Fisher and anchor, the
previous task's model for LwF) in Flower's ``context.state``; these functions only
decide and compute, the ClientApp stores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from fedrobust.continual.config import ContinualConfig
from fedrobust.continual.tasks import MaskedHead, TaskSchedule, class_split, domain_transform
from fedrobust.scenario import Scenario
from fedrobust.seeds import Stream, stream
from fedrobust.train import evaluate


def schedule(cfg: ContinualConfig) -> TaskSchedule:
    """Tasks one after the other, ``rounds_per_task`` rounds each; the last one stays."""
    return TaskSchedule(cfg.num_tasks(), cfg.rounds_per_task)


def client_offset(scenario: Scenario, partition_id: int) -> int:
    """Rounds a client's own schedule runs ahead (``schedule: own``; 0 when together)."""
    cfg = scenario.continual
    if cfg is None or cfg.schedule == "together":
        return 0
    rng = stream(scenario.seed, Stream.CONTINUAL_OFFSET, partition_id)
    return int(rng.integers(0, cfg.rounds_per_task))


def task_classes(cfg: ContinualConfig, task: int) -> list[int] | None:
    """The classes of ``task`` (``None`` for domain-incremental: all classes)."""
    return None if cfg.tasks is None else list(cfg.tasks[task])


def task_data(
    cfg: ContinualConfig, seed: int, x: np.ndarray, y: np.ndarray, task: int
) -> tuple[np.ndarray, np.ndarray]:
    """The examples of ``(x, y)`` that belong to ``task`` (shifted, when domain-incremental)."""
    if cfg.domain is not None:
        shift = domain_transform(cfg.domain.kind, task, seed, angle_step=cfg.domain.degrees)
        return np.asarray(shift(np.asarray(x))), y  # a stored test set: read once
    return class_split(x, y, [cfg.tasks[task]])[0]  # type: ignore[index]


def task_model(cfg: ContinualConfig, model: nn.Module, task: int) -> nn.Module:
    """What is trained and scored on ``task``: the model, or its task head (task-incremental)."""
    if cfg.setting == "task_incremental":
        return MaskedHead(model, task_classes(cfg, task) or [])
    return model


@torch.no_grad()
def task_accuracies(
    cfg: ContinualConfig,
    seed: int,
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
) -> list[float]:
    """Test accuracy on every task (the whole row of the accuracy matrix)."""
    scores = []
    for task in range(cfg.num_tasks()):
        xt, yt = task_data(cfg, seed, x, y, task)
        if len(yt) == 0:
            scores.append(0.0)
            continue
        scores.append(evaluate(task_model(cfg, model, task), xt, yt, num_classes).accuracy)
    return scores


def seen_mean(row: Sequence[float], task: int) -> float:
    """Mean accuracy over the tasks seen so far (0..task)."""
    return float(np.mean(row[: task + 1]))
