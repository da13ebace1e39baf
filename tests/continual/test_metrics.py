"""Accuracy matrix summaries: average accuracy, forgetting, backward transfer."""

from __future__ import annotations

import json

import pytest
from flwr.app import ArrayRecord

from fedrobust.continual import ContinualMetrics

# R[i][j]: accuracy on task j after training task i (row 0 also holds later tasks)
MATRIX = [
    [0.9, 0.1, 0.2],
    [0.6, 0.8],
    [0.7, 0.5, 0.9],
]


def _filled() -> ContinualMetrics:
    metrics = ContinualMetrics()
    for i, row in enumerate(MATRIX):
        metrics.record(i, row)
    return metrics


def test_known_values() -> None:
    metrics = _filled()
    assert metrics.num_tasks == 3
    assert metrics.average_accuracy() == pytest.approx((0.7 + 0.5 + 0.9) / 3)
    # task 0: best 0.9 (row 0), now 0.7; task 1: best 0.8 (row 1), now 0.5
    assert metrics.forgetting() == pytest.approx(((0.9 - 0.7) + (0.8 - 0.5)) / 2)
    assert metrics.bwt() == pytest.approx(((0.7 - 0.9) + (0.5 - 0.8)) / 2)


def test_forgetting_uses_the_best_earlier_row_and_ignores_rows_before_learning() -> None:
    metrics = ContinualMetrics()
    metrics.record(0, [0.5, 0.95])  # task 1's accuracy before learning it: not counted
    metrics.record(1, [0.8, 0.6])
    metrics.record(2, [0.4, 0.6, 0.9])
    # task 0: best over rows 0..1 is 0.8; task 1: best over row 1 is 0.6
    assert metrics.forgetting() == pytest.approx(((0.8 - 0.4) + (0.6 - 0.6)) / 2)
    # bwt compares with R[j][j]: task 0 improved after row 0, then fell
    assert metrics.bwt() == pytest.approx(((0.4 - 0.5) + (0.6 - 0.6)) / 2)


def test_one_or_no_task() -> None:
    metrics = ContinualMetrics()
    assert metrics.to_dict() == {
        "accuracy_matrix": [],
        "average_accuracy": None,
        "forgetting": None,
        "bwt": None,
    }
    metrics.record(0, [0.75])
    assert metrics.average_accuracy() == 0.75
    assert metrics.forgetting() is None and metrics.bwt() is None


def test_to_dict_is_json_safe_and_state_round_trips() -> None:
    metrics = _filled()
    summary = metrics.to_dict()
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert summary["accuracy_matrix"] == MATRIX

    restored = ContinualMetrics()
    restored.load_state_dict(ArrayRecord(metrics.state_dict()).to_torch_state_dict())
    assert restored.to_dict() == summary
    empty = ContinualMetrics()
    empty.load_state_dict(ContinualMetrics().state_dict())
    assert empty.rows == []


def test_rows_in_order_and_complete() -> None:
    metrics = ContinualMetrics()
    with pytest.raises(ValueError, match="expected row 0"):
        metrics.record(1, [0.5, 0.5])
    with pytest.raises(ValueError, match="needs >= 1"):
        metrics.record(0, [])
    with pytest.raises(ValueError, match="finite"):
        metrics.record(0, [float("nan")])
