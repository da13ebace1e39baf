"""Class-aware aggregation of the head: each class's row averaged over the clients that
trained the class, weighted by how many of its examples each trained on."""

from __future__ import annotations

import numpy as np
import pytest

from fedrobust.continual.class_aware import class_aware_rows, class_counts


def test_each_row_is_the_count_weighted_mean_and_an_untrained_row_keeps_the_start() -> None:
    start = np.array([[9.0, 9.0], [9.0, 9.0], [9.0, 9.0]], dtype=np.float32)
    a = np.array([[1.0, 2.0], [0.0, 0.0], [5.0, 5.0]], dtype=np.float32)
    b = np.array([[3.0, 6.0], [4.0, 8.0], [7.0, 7.0]], dtype=np.float32)
    counts = np.array([[3, 0, 0], [1, 2, 0]])  # class 0: 3 and 1; class 1: b only; 2: nobody
    got = class_aware_rows(start, [a, b], counts)
    # row 0: (3 * [1, 2] + 1 * [3, 6]) / 4 = [1.5, 3]; row 1: b's; row 2: the start's
    np.testing.assert_allclose(got, [[1.5, 3.0], [4.0, 8.0], [9.0, 9.0]])
    assert got.dtype == np.float32


def test_a_bias_vector_is_weighted_the_same_way() -> None:
    got = class_aware_rows(np.zeros(2), [np.array([1.0, 10.0]), np.array([4.0, 20.0])],
                           np.array([[2, 1], [1, 0]]))  # fmt: skip
    np.testing.assert_allclose(got, [(2 * 1 + 4) / 3, 10.0])


def test_counts_that_do_not_match_the_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="do not match"):
        class_aware_rows(np.zeros((3, 2)), [np.zeros((3, 2))], np.ones((2, 3)))


def test_class_counts_cover_every_class() -> None:
    assert class_counts(np.array([2, 0, 2, 2]), 4).tolist() == [1, 0, 3, 0]
