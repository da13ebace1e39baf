"""Continual-learning task definitions: class splits, domain shifts, schedules, task masks.

The three scenarios of van de Ven & Tolias 2019 (https://arxiv.org/abs/1904.07734):

* class-incremental: each task brings new classes (:func:`class_split`), one shared head;
* task-incremental: the same splits, but the task is known at train and test time, so the
  logits outside the task's classes are masked (:class:`MaskedHead`, :class:`TaskMask`);
* domain-incremental: same classes, shifted inputs (:func:`domain_transform`: permuted
  pixels, Goodfellow et al. 2013, https://arxiv.org/abs/1312.6211; rotations, Lopez-Paz &
  Ranzato 2017, https://arxiv.org/abs/1706.08840).

:class:`TaskSchedule` says which task a federated round trains on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedrobust.train.plugins import TrainPlugin

Data = TypeVar("Data", np.ndarray, torch.Tensor)

#: What masked logits are set to: finite, so a cross-entropy never sees ``-inf - -inf``.
MASK_VALUE = -1e9


def class_split(x: Data, y: Data, groups: Sequence[Sequence[int]]) -> list[tuple[Data, Data]]:
    """Split a labelled set into tasks by class (class- and task-incremental learning).

    Parameters
    ----------
    x, y : np.ndarray or torch.Tensor
        Inputs (first axis: examples) and integer labels, both numpy or both torch.
    groups : sequence of sequence of int
        The classes of each task, e.g. ``[[0, 1], [2, 3]]``. Groups must be disjoint;
        classes in no group are dropped.

    Returns
    -------
    list of (x, y)
        One ``(x, y)`` pair per group, in group order, in the input's type. Labels keep
        their original (global) values and the examples keep their relative order.
    """
    seen: set[int] = set()
    for group in groups:
        overlap = seen.intersection(group)
        if overlap:
            raise ValueError(f"class_split: classes {sorted(overlap)} are in more than one group")
        seen.update(group)
    tasks = []
    for group in groups:
        if isinstance(y, torch.Tensor):
            mask = torch.isin(y, torch.as_tensor(list(group), dtype=y.dtype, device=y.device))
        else:
            mask = np.isin(y, np.asarray(list(group), dtype=y.dtype))
        tasks.append((x[mask], y[mask]))
    return tasks


def _permutation(seed: int, task_index: int, size: int) -> torch.Tensor:
    rng = np.random.default_rng([seed, task_index, size])
    return torch.from_numpy(rng.permutation(size))


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(x) if isinstance(x, np.ndarray) else x


def _like_input(out: torch.Tensor, x: Data) -> Data:
    return out.numpy() if isinstance(x, np.ndarray) else out


def permute_features(x: Data, permutation: torch.Tensor) -> Data:
    """Reorder each example's flattened features (all axes but the first) by ``permutation``."""
    t = _as_tensor(x)
    flat = t.reshape(len(t), -1)
    if flat.shape[1] != len(permutation):
        raise ValueError(f"permutation of {len(permutation)} features for inputs {tuple(t.shape)}")
    out = flat[:, permutation.to(t.device)].reshape(t.shape)
    return _like_input(out, x)


def rotate_images(x: Data, degrees: float) -> Data:
    """Rotate images ``(N, C, H, W)`` counter-clockwise by ``degrees`` about their centre.

    Bilinear sampling with ``affine_grid``/``grid_sample``; pixels rotated in from outside
    the image are zero. A multiple of 90 degrees on a square image matches ``torch.rot90``
    (up to float rounding).
    """
    t = _as_tensor(x)
    if t.dim() != 4:
        raise ValueError(f"rotate needs image inputs (N, C, H, W), got shape {tuple(t.shape)}")
    if len(t) == 0:
        return x
    radians = math.radians(degrees)
    cos, sin = math.cos(radians), math.sin(radians)
    # affine_grid maps output coordinates (x right, y down, in [-1, 1]) to input ones.
    # Sampling the input at R(-angle) @ p turns the picture counter-clockwise on screen.
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=torch.float32)
    theta = theta.to(t.device).unsqueeze(0).expand(len(t), 2, 3)
    work = t if t.is_floating_point() else t.float()
    grid = F.affine_grid(theta.to(work.dtype), list(work.shape), align_corners=False)
    out = F.grid_sample(work, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return _like_input(out.to(t.dtype), x)


def domain_transform(
    kind: Literal["permute", "rotate"],
    task_index: int,
    seed: int,
    angle_step: float = 30.0,
) -> Callable[[Data], Data]:
    """The fixed input shift of one domain-incremental task.

    Parameters
    ----------
    kind : {"permute", "rotate"}
        ``permute``: a fixed permutation of each example's flattened features (pixels
        and channels), drawn from ``(seed, task_index, number of features)``.
        ``rotate``: a rotation of images by ``task_index * angle_step`` degrees,
        counter-clockwise (``seed`` is unused).
    task_index : int
        The task; task 0 is the identity.
    seed : int
        Seeds the permutation.
    angle_step : float
        Degrees between consecutive rotation tasks.

    Returns
    -------
    callable
        ``transform(x) -> x'`` on a batch (numpy or torch; same type, shape and dtype
        back). Deterministic: the same arguments give the same transform in any process.
    """
    if task_index < 0:
        raise ValueError(f"task_index must be >= 0, got {task_index}")
    if kind not in ("permute", "rotate"):
        raise ValueError(f"unknown domain transform {kind!r} (permute | rotate)")
    if task_index == 0:
        return _identity
    if kind == "rotate":
        degrees = task_index * angle_step

        def rotate(x: Data) -> Data:
            return rotate_images(x, degrees)

        return rotate

    def permute(x: Data) -> Data:
        size = int(np.prod(tuple(x.shape[1:])))
        return permute_features(x, _permutation(seed, task_index, size))

    return permute


def _identity(x: Data) -> Data:
    return x


@dataclass(frozen=True)
class TaskSchedule:
    """Which task a federated round trains on: ``rounds_per_task`` rounds per task.

    Parameters
    ----------
    num_tasks : int
        Number of tasks.
    rounds_per_task : int
        Consecutive rounds spent on each task.
    first_round : int
        The number of the first round (Flower counts from 1).
    cyclic : bool
        After the last task start again at task 0; otherwise stay on the last task.
    """

    num_tasks: int
    rounds_per_task: int
    first_round: int = 1
    cyclic: bool = False

    def __post_init__(self) -> None:
        if self.num_tasks < 1 or self.rounds_per_task < 1:
            raise ValueError("TaskSchedule needs num_tasks >= 1 and rounds_per_task >= 1")

    def _step(self, rnd: int, offset: int) -> int:
        return max(rnd - self.first_round + offset, 0) // self.rounds_per_task

    def task(self, rnd: int, offset: int = 0) -> int:
        """The task index trained in round ``rnd``.

        Parameters
        ----------
        rnd : int
            The server round.
        offset : int
            Rounds this client's own schedule is ahead (positive) or behind (negative);
            rounds before its schedule starts train task 0.

        Returns
        -------
        int
            Task index in ``[0, num_tasks)``.
        """
        step = self._step(rnd, offset)
        return step % self.num_tasks if self.cyclic else min(step, self.num_tasks - 1)

    def is_last_round_of_task(self, rnd: int, offset: int = 0) -> bool:
        """Whether ``rnd`` ends a task (time to consolidate: fill a buffer, compute a Fisher).

        Under a non-cyclic schedule the last task never ends.
        """
        step = self._step(rnd, offset)
        if not self.cyclic and step >= self.num_tasks - 1:
            return False
        return self._step(rnd + 1, offset) != step


def task_mask_logits(logits: torch.Tensor, classes: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Set the logits of classes outside ``classes`` to :data:`MASK_VALUE` (a task's head).

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, K)`` scores.
    classes : sequence of int or torch.Tensor
        The task's classes.

    Returns
    -------
    torch.Tensor
        A new tensor; masked entries carry no gradient.
    """
    keep = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    keep[torch.as_tensor(classes, dtype=torch.long, device=logits.device)] = True
    fill = max(MASK_VALUE, torch.finfo(logits.dtype).min)
    return logits.masked_fill(~keep, fill)


class MaskedHead(nn.Module):
    """A model whose logits outside one task's classes are masked (task-incremental heads).

    Shares ``model``'s parameters (same order in ``parameters()``; ``state_dict`` keys get
    the prefix ``model.``) and adds none, so training the wrapper trains ``model``.

    Parameters
    ----------
    model : nn.Module
        The classifier over all classes.
    classes : sequence of int
        The task's classes.
    """

    def __init__(self, model: nn.Module, classes: Sequence[int]) -> None:
        super().__init__()
        self.model = model
        self.classes = [int(c) for c in classes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return task_mask_logits(self.model(x), self.classes)


class TaskMask(TrainPlugin):
    """Train on one task's head only: wraps the model in :class:`MaskedHead`.

    ``local_train`` hands plugins the network and the reduced loss, never the logits, so
    the mask cannot be a ``loss`` hook; ``before_training`` returns the wrapper instead and
    the loop trains it (the wrapped model's parameters are updated in place). Place it
    before plugins whose ``before_training`` snapshots the model, so they see the wrapper.

    Parameters
    ----------
    classes : sequence of int
        The current task's classes.
    """

    def __init__(self, classes: Sequence[int]) -> None:
        self.classes = [int(c) for c in classes]

    def before_training(self, model: nn.Module) -> nn.Module:
        return MaskedHead(model, self.classes)
