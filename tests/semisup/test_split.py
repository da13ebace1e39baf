"""Each client keeps the labels of a seeded, stratified share of its training data."""

from __future__ import annotations

import numpy as np
import pytest

from fedrobust.semisup.split import labeled_count, labeled_indices, split_labeled


def _labels() -> np.ndarray:
    return np.repeat(np.arange(4), [40, 30, 20, 10])  # 100 examples, 4 classes


def test_the_fraction_of_each_class_keeps_its_labels() -> None:
    y = _labels()
    keep = labeled_indices(y, 0.1, np.random.default_rng(0))
    assert len(keep) == 10
    assert np.bincount(y[keep], minlength=4).tolist() == [4, 3, 2, 1]
    assert len(np.unique(keep)) == len(keep)


def test_rounding_remainders_still_give_the_rounded_total() -> None:
    y = np.repeat(np.arange(3), [7, 7, 7])
    keep = labeled_indices(y, 0.2, np.random.default_rng(1))
    assert len(keep) == round(0.2 * 21)
    assert np.bincount(y[keep], minlength=3).max() <= 2  # spread over the classes


@pytest.mark.parametrize(("n", "fraction"), [(5, 0.01), (1, 0.5), (30, 0.001)])
def test_every_client_keeps_at_least_one_label(n: int, fraction: float) -> None:
    y = np.arange(n) % 3
    assert len(labeled_indices(y, fraction, np.random.default_rng(0))) == 1
    assert labeled_count(n, fraction) == 1


def test_the_split_is_deterministic_per_client_and_differs_between_clients() -> None:
    x = np.arange(100, dtype=np.float32).reshape(100, 1)
    y = _labels()
    first = split_labeled(x, y, 0.2, seed=3, partition=0)
    again = split_labeled(x, y, 0.2, seed=3, partition=0)
    other = split_labeled(x, y, 0.2, seed=3, partition=1)
    assert np.array_equal(first.x, again.x) and np.array_equal(first.y, again.y)
    assert not np.array_equal(first.x, other.x)
    assert not np.array_equal(first.x, split_labeled(x, y, 0.2, seed=4, partition=0).x)


def test_labelled_and_unlabelled_parts_cover_the_data_once() -> None:
    x = np.arange(100, dtype=np.float32).reshape(100, 1)
    y = _labels()
    split = split_labeled(x, y, 0.3, seed=0, partition=2)
    assert len(split.y) == 30 and len(split.unlabeled) == 70
    together = np.sort(np.concatenate([split.x[:, 0], split.unlabeled[:, 0]]))
    assert np.array_equal(together, x[:, 0])
    assert np.array_equal(split.y, y[split.x[:, 0].astype(int)])  # labels stay with inputs


def test_fraction_one_keeps_every_label() -> None:
    y = _labels()
    split = split_labeled(np.zeros((100, 1)), y, 1.0, seed=0, partition=0)
    assert len(split.y) == 100 and len(split.unlabeled) == 0
