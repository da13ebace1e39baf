"""Centralised sanity experiments on split digits: replay and EWC reduce forgetting.

Five tasks of two classes each from scikit-learn's 8x8 digits, trained one after another
with ``local_train``. Measured (average accuracy after the last task, seeds 0 and 1):

* class-incremental, MLP 64-100-10, 5 epochs per task: none 0.191 / 0.183,
  replay (reservoir of 200, ratio 1) 0.915 / 0.906;
* task-incremental (masked heads), MLP 64-10-10, 30 epochs per task at lr 0.1:
  none 0.961 / 0.926, online EWC (lambda 1000) 0.994 / 0.985.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from fedrobust.continual import (
    EWC,
    ContinualMetrics,
    MaskedHead,
    Replay,
    ReservoirBuffer,
    TaskMask,
    class_split,
    fisher_diagonal,
    snapshot,
)
from fedrobust.train import TrainPlugin, evaluate, local_train
from fedrobust.train.config import OptimizerConfig, TrainConfig

GROUPS = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
SEEDS = (0, 1)

Split = list[tuple[np.ndarray, np.ndarray]]


def _split_digits(seed: int) -> tuple[Split, Split]:
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    return class_split(x_tr, y_tr, GROUPS), class_split(x_te, y_te, GROUPS)


def _mlp(seed: int, hidden: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def _run(
    method: str, seed: int, *, task_incremental: bool, hidden: int, epochs: int, lr: float
) -> ContinualMetrics:
    """Train the tasks in order with ``method`` (none | replay | ewc); the accuracy matrix."""
    train, test = _split_digits(seed)
    model = _mlp(seed, hidden)
    cfg = TrainConfig(
        local_epochs=epochs, batch_size=32, optimizer=OptimizerConfig(name="sgd", lr=lr)
    )
    buffer = ReservoirBuffer(capacity=200, seed=seed)
    ewc: EWC | None = None
    metrics = ContinualMetrics()

    def head(task: int) -> nn.Module:
        return MaskedHead(model, GROUPS[task]) if task_incremental else model

    for task, (x, y) in enumerate(train):
        plugins: list[TrainPlugin] = [TaskMask(GROUPS[task])] if task_incremental else []
        if method == "replay":
            plugins.append(Replay(buffer, ratio=1.0, seed=seed + task))
        if method == "ewc" and ewc is not None:
            plugins.append(ewc)
        local_train(
            model, x, y, train=cfg, num_classes=10, seed=100 * seed + task, plugins=tuple(plugins)
        )
        if method == "replay":
            buffer.add(torch.from_numpy(x), torch.from_numpy(y))
        if method == "ewc":
            fisher = fisher_diagonal(head(task), x, y)
            if ewc is None:
                ewc = EWC(fisher, snapshot(model), lam=1000.0)
            else:
                ewc.consolidate(fisher, snapshot(model), decay=1.0)
        accuracies = [evaluate(head(j), xt, yt).accuracy for j, (xt, yt) in enumerate(test)]
        metrics.record(task, accuracies)
    return metrics


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("seed", SEEDS)
def test_replay_beats_no_method_class_incremental(seed: int) -> None:
    settings = {"task_incremental": False, "hidden": 100, "epochs": 5, "lr": 0.05}
    none = _run("none", seed, **settings)
    replay = _run("replay", seed, **settings)
    assert none.average_accuracy() < 0.3  # only the last task is remembered
    assert replay.average_accuracy() >= none.average_accuracy() + 0.25
    assert replay.forgetting() < none.forgetting()


@pytest.mark.usefixtures("single_thread")
def test_ewc_beats_no_method_task_incremental() -> None:
    settings = {"task_incremental": True, "hidden": 10, "epochs": 30, "lr": 0.1}
    none = [_run("none", seed, **settings).average_accuracy() for seed in SEEDS]
    ewc = [_run("ewc", seed, **settings).average_accuracy() for seed in SEEDS]
    assert all(e > n for e, n in zip(ewc, none, strict=True)), (ewc, none)
    assert np.mean(ewc) >= np.mean(none) + 0.02, (ewc, none)
