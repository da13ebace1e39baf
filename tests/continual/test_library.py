"""The continual-learning pieces: reservoir buffer, EWC, LwF, task splits, metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from torch import nn

from fedrobust.continual import (
    EWC,
    ContinualMetrics,
    LwF,
    MaskedHead,
    ReservoirBuffer,
    class_split,
    domain_transform,
    fisher_diagonal,
    snapshot,
)


def test_the_buffer_never_exceeds_its_size_and_survives_a_state_round_trip() -> None:
    buffer = ReservoirBuffer(capacity=30, seed=1)
    for start in range(0, 500, 37):
        buffer.add(torch.arange(start, start + 37).float()[:, None], torch.zeros(37).long())
        assert len(buffer) <= 30
    copy = ReservoirBuffer(capacity=30, seed=1)
    copy.load_state_dict(buffer.state_dict())
    assert torch.equal(copy.sample(30, torch.Generator().manual_seed(0))[0],
                       buffer.sample(30, torch.Generator().manual_seed(0))[0])  # fmt: skip


def test_the_buffer_keeps_a_uniform_sample_of_the_stream() -> None:
    counts = np.zeros(1000)
    for seed in range(300):
        buffer = ReservoirBuffer(capacity=100, seed=seed)
        for start in range(0, 1000, 250):  # batches, as a client adds whole tasks
            buffer.add(torch.arange(start, start + 250)[:, None].float(), torch.zeros(250).long())
        kept, _ = buffer.sample(100, torch.Generator().manual_seed(seed))
        counts[kept[:, 0].long().numpy()] += 1
    # each item is kept with probability 0.1: 30 expected per item over 300 streams;
    # bins of 100 consecutive items (expected 3,000 each) test early vs late items too
    assert counts.sum() == 30_000
    bins = counts.reshape(10, 100).sum(axis=1)
    assert chisquare(bins).pvalue > 0.001
    assert chisquare(counts).pvalue > 0.001


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3))


def test_ewc_penalty_is_zero_at_the_anchor_and_grows_with_distance() -> None:
    model = tiny_model()
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    ewc = EWC.from_model(model, x, y, lam=10.0)
    assert float(ewc.penalty(model)) == 0.0
    direction = [torch.randn_like(p) for p in model.parameters()]
    values = []
    for step in (0.1, 0.2, 0.4, 0.8):
        moved = tiny_model()
        with torch.no_grad():
            for p, d in zip(moved.parameters(), direction, strict=True):
                p.add_(step * d)
        values.append(float(ewc.penalty(moved)))
    assert values == sorted(values) and values[0] > 0
    assert values[1] == pytest.approx(4 * values[0], rel=1e-5)  # quadratic


def test_fisher_diagonal_is_the_mean_squared_per_example_gradient() -> None:
    model = tiny_model()
    x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))
    fisher = fisher_diagonal(model, x, y)
    expected = [torch.zeros_like(p) for p in model.parameters()]
    for i in range(6):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        for e, p in zip(expected, model.parameters(), strict=True):
            e += p.grad**2 / 6
    for f, e in zip(fisher, expected, strict=True):
        assert torch.allclose(f, e, atol=1e-6)


def test_ewc_weighs_each_parameter_by_its_fisher() -> None:
    model = tiny_model()
    fisher = [torch.zeros_like(p) for p in model.parameters()]
    fisher[1][0] = 2.0  # only the first bias matters
    ewc = EWC(fisher, snapshot(model), lam=1.0)
    moved = tiny_model()
    with torch.no_grad():
        moved[0].weight.add_(5.0)
        moved[0].bias[1] += 5.0
    assert float(ewc.penalty(moved)) == 0.0
    with torch.no_grad():
        moved[0].bias[0] += 3.0
    assert float(ewc.penalty(moved)) == pytest.approx(0.5 * 2.0 * 9.0)


def test_lwf_term_is_zero_for_the_old_model_itself_and_positive_after_a_change() -> None:
    model = tiny_model()
    lwf = LwF(model, temperature=2.0, alpha=1.0)
    x, y = lwf.batch(torch.randn(8, 4), torch.zeros(8).long())
    assert float(lwf.loss(model, torch.tensor(0.0))) == pytest.approx(0.0, abs=1e-7)
    with torch.no_grad():
        model[0].weight.add_(torch.randn_like(model[0].weight))
    assert float(lwf.loss(model, torch.tensor(0.0))) > 0


def test_class_split_and_domain_shifts() -> None:
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.array([0, 1, 2, 3, 0, 2])
    (x0, y0), (x1, y1) = class_split(x, y, [[0, 1], [2]])
    assert y0.tolist() == [0, 1, 0] and y1.tolist() == [2, 2] and x1.tolist() == [[4, 5], [10, 11]]
    images = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    assert np.array_equal(domain_transform("permute", 0, 5)(images), images)
    shifted = domain_transform("permute", 2, 5)(images)
    assert np.array_equal(np.sort(shifted.reshape(3, -1)), np.sort(images.reshape(3, -1)))
    assert not np.array_equal(shifted, images)
    assert np.array_equal(shifted, domain_transform("permute", 2, 5)(images))  # seeded


def test_masked_head_scores_only_its_task_classes() -> None:
    head = MaskedHead(tiny_model(), [1, 2])
    assert head(torch.randn(5, 4)).argmax(1).min() >= 1


def test_metrics_of_a_hand_built_matrix() -> None:
    metrics = ContinualMetrics()
    metrics.record(0, [0.9, 0.1, 0.0])
    metrics.record(1, [0.6, 0.8, 0.1])
    metrics.record(2, [0.5, 0.7, 0.9])
    summary = metrics.to_dict()
    assert summary["average_accuracy"] == pytest.approx((0.5 + 0.7 + 0.9) / 3)
    assert summary["forgetting"] == pytest.approx(((0.9 - 0.5) + (0.8 - 0.7)) / 2)
    assert summary["bwt"] == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)
    with pytest.raises(ValueError, match="expected row 3"):
        metrics.record(5, [0.1] * 6)
