"""The reservoir buffer and the replay plugin."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord
from scipy import stats

from fedrobust.continual import Replay, ReservoirBuffer


def _stream(buffer: ReservoirBuffer, items: int, sizes: list[int]) -> None:
    """Stream items 0..items-1 (label = item id) in batches cycling through ``sizes``."""
    start, k = 0, 0
    while start < items:
        stop = min(start + sizes[k % len(sizes)], items)
        ids = torch.arange(start, stop)
        buffer.add(ids.float().unsqueeze(1).repeat(1, 3), ids)
        assert len(buffer) <= buffer.capacity and len(buffer.x) == buffer.capacity
        start, k = stop, k + 1


def test_never_exceeds_capacity_and_holds_distinct_stream_items() -> None:
    buffer = ReservoirBuffer(capacity=50, seed=0)
    assert len(buffer) == 0
    _stream(buffer, 30, [7])
    assert len(buffer) == 30 and sorted(buffer.y[:30].tolist()) == list(range(30))
    _stream(buffer, 500, [1, 64, 3])
    assert len(buffer) == 50 and buffer.seen == 530
    held = buffer.y.tolist()
    assert len(set(held)) == 50  # no duplicates: each slot holds a different example
    assert torch.equal(buffer.x[:, 0].long(), buffer.y)  # inputs stay with their labels


def test_reservoir_sample_is_uniform() -> None:
    """Each of 1000 streamed items ends in a capacity-100 buffer with probability 0.1."""
    items, capacity, runs = 1000, 100, 300
    counts = np.zeros(items)
    for seed in range(runs):
        buffer = ReservoirBuffer(capacity, seed=seed)
        _stream(buffer, items, [1, 37, 200, 5])
        counts[buffer.y.numpy()] += 1
    p = capacity / items
    # per-item inclusion counts ~ Binomial(runs, p) (slightly negatively correlated, which
    # only shrinks the statistic): a chi-square test on the standardised squares
    statistic = np.sum((counts - runs * p) ** 2 / (runs * p * (1 - p)))
    p_value = stats.chi2.sf(statistic, df=items - 1)
    assert p_value > 0.01, (statistic, p_value)
    assert abs(counts.mean() / runs - p) < 1e-12  # exactly `capacity` items per run
    # no drift along the stream: early and late items are kept equally often
    early, late = counts[:500].mean() / runs, counts[500:].mean() / runs
    assert abs(early - late) < 0.01


def test_sample_without_replacement_and_state_round_trip() -> None:
    buffer = ReservoirBuffer(capacity=20, seed=1)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(3)
    _stream(buffer, 45, [10])
    x, y = buffer.sample(8, torch.Generator().manual_seed(0))
    assert len(y) == 8 and len(set(y.tolist())) == 8
    assert set(y.tolist()) <= set(buffer.y.tolist())
    assert len(buffer.sample(100)[1]) == 20  # at most what it holds

    # through a Flower ArrayRecord (as in context.state) and back
    record = ArrayRecord(buffer.state_dict())
    restored = ReservoirBuffer(capacity=20, seed=99)
    restored.load_state_dict(record.to_torch_state_dict())
    assert restored.seen == buffer.seen and torch.equal(restored.y, buffer.y)
    _stream(buffer, 60, [9])
    _stream(restored, 60, [9])
    assert torch.equal(restored.x, buffer.x) and torch.equal(restored.y, buffer.y)

    empty = ReservoirBuffer(capacity=5, seed=0)
    empty.load_state_dict(ReservoirBuffer(capacity=5, seed=3).state_dict())
    assert len(empty) == 0
    with pytest.raises(ValueError, match="capacity"):
        ReservoirBuffer(capacity=6, seed=0).load_state_dict(buffer.state_dict())


def test_replay_appends_ratio_of_batch() -> None:
    buffer = ReservoirBuffer(capacity=30, seed=0)
    plugin = Replay(buffer, ratio=0.5, seed=0)
    xb, yb = torch.rand(10, 3, dtype=torch.float64), torch.zeros(10, dtype=torch.long)
    x, y = plugin.batch(xb, yb)
    assert x is xb and y is yb  # empty buffer: unchanged
    buffer.add(torch.rand(40, 3), torch.arange(40) + 100)
    x, y = plugin.batch(xb, yb)
    assert x.shape == (15, 3) and x.dtype == torch.float64 and y.dtype == torch.long
    assert torch.equal(x[:10], xb) and (y[10:] >= 100).all()
    x, y = plugin.batch(xb[:3], yb[:3])
    assert len(y) == 3 + round(1.5)
    x, y = plugin.batch(xb[:0], yb[:0])  # an empty (Poisson) batch stays empty
    assert len(x) == 0 and len(y) == 0
    x, y = Replay(buffer, ratio=5.0, seed=0).batch(xb, yb)
    assert len(y) == 10 + 30  # no more than the buffer holds


def test_balanced_reservoir_gives_each_seen_class_an_equal_share_evicting_the_largest() -> None:
    buffer = ReservoirBuffer(capacity=4, seed=0, balance=True)
    buffer.add(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))
    buffer.add(torch.ones(2, 2), torch.ones(2, dtype=torch.long))
    assert buffer.counts() == {0: 2, 1: 2}  # each class-1 example evicted a class-0 one
    buffer.add(torch.full((10, 2), 2.0), torch.full((10,), 2))
    # 2nd class-2 example: class 2 holds 1 < 2 (the largest) -> evicts from the largest;
    # from the 3rd on, class 2 is a largest class and only replaces its own examples.
    assert buffer.counts() == {0: 1, 1: 1, 2: 2}
    assert all(int(buffer.x[i, 0]) == int(buffer.y[i]) for i in range(4))  # rows kept paired


def test_balanced_reservoir_keeps_a_late_small_class_a_uniform_one_drowns() -> None:
    y = torch.cat([torch.zeros(100, dtype=torch.long), torch.ones(10, dtype=torch.long)])
    balanced = ReservoirBuffer(capacity=20, seed=0, balance=True)
    uniform = ReservoirBuffer(capacity=20, seed=0)
    for buffer in (balanced, uniform):
        buffer.add(y.float().unsqueeze(1), y)
    assert balanced.counts() == {0: 10, 1: 10}
    assert uniform.counts().get(1, 0) <= 6  # expected 20 * 10 / 110 ~ 1.8


def test_buffer_stores_logits_with_their_examples_and_keeps_them_through_state() -> None:
    buffer = ReservoirBuffer(capacity=5, seed=1, balance=True)
    x = torch.arange(12.0).reshape(6, 2)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    buffer.add(x, y, logits=x * 10)
    restored = ReservoirBuffer(capacity=5, seed=1, balance=True)
    restored.load_state_dict(ArrayRecord(buffer.state_dict()).to_torch_state_dict())
    assert restored.class_seen == {0: 2, 1: 2, 2: 2}
    xs, ys, zs = restored.sample_logits(5)
    torch.testing.assert_close(zs, xs * 10)
    with pytest.raises(ValueError, match="logits"):
        restored.add(x, y)  # a buffer of logits takes logits with every batch


def test_union_draws_every_class_equally_from_task_data_and_buffer() -> None:
    from fedrobust.continual.replay import balanced_union

    buffer = ReservoirBuffer(capacity=4, seed=0)
    buffer.add(torch.tensor([[0.0], [0.0], [1.0], [1.0]]), torch.tensor([0, 0, 1, 1]))
    y = np.array([2] * 6 + [3] * 2)
    x = y[:, None].astype(np.float32) + np.arange(8, dtype=np.float32)[:, None] / 100
    ux, uy = balanced_union(x, y, buffer, torch.Generator().manual_seed(0))
    # 8 task + 4 buffer examples, 4 classes: 3 of each.
    assert np.bincount(uy).tolist() == [3, 3, 3, 3]
    assert np.array_equal(np.floor(ux[:, 0]).astype(int), uy)  # rows stay paired
    assert len(np.unique(ux[uy == 2, 0])) == 3  # a large class gives distinct examples
    assert set(np.rint((ux[uy == 3, 0] - 3) * 100).astype(int)) == {6, 7}  # a small one: all
