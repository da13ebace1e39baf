"""Task splits, domain transforms, schedules and task masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedrobust.continual import (
    MaskedHead,
    TaskMask,
    TaskSchedule,
    class_split,
    domain_transform,
    task_mask_logits,
)


def test_class_split_partitions_by_class() -> None:
    y = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3])
    x = np.arange(len(y) * 2, dtype=np.float32).reshape(len(y), 2)
    tasks = class_split(x, y, [[0, 1], [2, 3], [4]])
    assert [t[1].tolist() for t in tasks] == [[0, 1, 0, 1], [2, 3, 2, 3], [4]]
    for xt, yt in tasks:
        rows = (xt[:, 0] // 2).astype(int)
        np.testing.assert_array_equal(y[rows], yt)  # inputs travel with their labels
    assert sum(len(t[1]) for t in tasks) == len(y) - 1  # class 5 is in no group: dropped


def test_class_split_on_tensors_and_refuses_overlap() -> None:
    y = torch.tensor([1, 0, 1, 2])
    tasks = class_split(torch.arange(4.0), y, [[1], [0, 2]])
    assert tasks[0][0].tolist() == [0.0, 2.0] and tasks[1][0].tolist() == [1.0, 3.0]
    with pytest.raises(ValueError, match="more than one group"):
        class_split(torch.arange(4.0), y, [[0, 1], [1, 2]])


@pytest.mark.parametrize("kind", ["permute", "rotate"])
def test_task_zero_is_identity(kind: str) -> None:
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(domain_transform(kind, 0, seed=5)(x), x)


def test_permute_is_a_fixed_permutation() -> None:
    x = torch.rand(4, 1, 8, 8)
    t1 = domain_transform("permute", 1, seed=3)
    out = t1(x)
    assert out.shape == x.shape and not torch.equal(out, x)
    assert torch.equal(out, domain_transform("permute", 1, seed=3)(x))  # deterministic
    assert not torch.equal(out, domain_transform("permute", 2, seed=3)(x))
    assert not torch.equal(out, domain_transform("permute", 1, seed=4)(x))
    # each example's values are a rearrangement, the same one for every example
    flat_in, flat_out = x.reshape(4, -1), out.reshape(4, -1)
    assert torch.equal(flat_in.sort(1).values, flat_out.sort(1).values)
    order = [int((flat_in[0] == v).nonzero()[0]) for v in flat_out[0]]
    assert sorted(order) == list(range(64))
    assert torch.equal(flat_in[:, order], flat_out)
    # numpy in, numpy out
    np.testing.assert_array_equal(t1(x.numpy()), out.numpy())


def test_rotation_matches_rot90_and_inverts() -> None:
    x = torch.rand(2, 3, 8, 8)
    quarter = domain_transform("rotate", 1, seed=0, angle_step=90.0)(x)
    torch.testing.assert_close(quarter, torch.rot90(x, 1, dims=(2, 3)), atol=1e-5, rtol=0)
    half = domain_transform("rotate", 2, seed=0, angle_step=90.0)(x)
    torch.testing.assert_close(half, torch.rot90(x, 2, dims=(2, 3)), atol=1e-5, rtol=0)
    # a smooth image rotated by +30 then -30 degrees comes back near its centre
    grid = torch.linspace(-1, 1, 28)
    smooth = torch.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) * 3).expand(1, 1, 28, 28)
    there = domain_transform("rotate", 1, seed=0, angle_step=30.0)(smooth)
    back = domain_transform("rotate", 1, seed=0, angle_step=-30.0)(there)
    centre = slice(8, 20)
    assert torch.allclose(back[..., centre, centre], smooth[..., centre, centre], atol=0.05)
    with pytest.raises(ValueError, match="N, C, H, W"):
        domain_transform("rotate", 1, seed=0)(torch.rand(2, 64))


def test_task_schedule() -> None:
    schedule = TaskSchedule(num_tasks=3, rounds_per_task=2)
    assert [schedule.task(r) for r in range(1, 10)] == [0, 0, 1, 1, 2, 2, 2, 2, 2]
    cyclic = TaskSchedule(num_tasks=3, rounds_per_task=2, cyclic=True)
    assert [cyclic.task(r) for r in range(1, 10)] == [0, 0, 1, 1, 2, 2, 0, 0, 1]
    assert [schedule.task(r, offset=1) for r in range(1, 6)] == [0, 1, 1, 2, 2]
    assert [schedule.task(r, offset=-2) for r in range(1, 6)] == [0, 0, 0, 0, 1]
    ends = [r for r in range(1, 10) if schedule.is_last_round_of_task(r)]
    assert ends == [2, 4]
    with pytest.raises(ValueError):
        TaskSchedule(num_tasks=0, rounds_per_task=1)


def test_task_mask_and_masked_head() -> None:
    logits = torch.arange(12.0).reshape(2, 6).requires_grad_()
    masked = task_mask_logits(logits, [1, 4])
    assert masked.argmax(1).tolist() == [4, 4]
    assert (masked[:, [0, 2, 3, 5]] < -1e8).all()
    masked.sum().backward()
    assert logits.grad is not None and logits.grad[:, [1, 4]].eq(1).all()
    assert logits.grad[:, [0, 2, 3, 5]].eq(0).all()

    model = nn.Linear(4, 6)
    head = TaskMask([2, 3]).before_training(model)
    assert isinstance(head, MaskedHead)
    assert list(head.parameters()) == list(model.parameters())  # shares, adds none
    out = head(torch.rand(5, 4))
    assert set(out.argmax(1).tolist()) <= {2, 3}
