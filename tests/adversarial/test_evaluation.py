"""Robust evaluation attacks a representative, seeded subset of the test set."""

from __future__ import annotations

import numpy as np

from fedrobust.adversarial.evaluation import attack_subset


def test_the_attacked_subset_spans_a_class_sorted_test_set_and_repeats() -> None:
    labels = np.repeat(np.arange(10), 100)  # sorted by class, as mnist-5k's test set is
    subset = attack_subset(len(labels), 300, seed=0)
    assert len(subset) == 300 and len(set(subset)) == 300
    counts = np.bincount(labels[subset], minlength=10)
    assert counts.min() >= 15  # every class present, none dominating (the first 300: 3)
    assert np.array_equal(subset, attack_subset(len(labels), 300, seed=0))
    assert not np.array_equal(subset, attack_subset(len(labels), 300, seed=1))
    assert np.array_equal(attack_subset(50, None, 0), np.arange(50))
    assert np.array_equal(attack_subset(50, 80, 0), np.arange(50))
