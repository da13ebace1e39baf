"""Mean and Student-t confidence intervals over seeds."""

from __future__ import annotations

import math

import pytest

from fedrobust.report.stats import format_ci, format_values, mean_ci, overlap


def test_mean_ci_is_the_student_t_interval() -> None:
    mean, half = mean_ci([0.90, 0.92, 0.94])
    # sd 0.02, n 3: t(0.975, 2) = 4.3027 -> 4.3027 * 0.02 / sqrt(3)
    assert mean == pytest.approx(0.92)
    assert half == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-5)
    assert math.isnan(mean_ci([0.5])[1])
    with pytest.raises(ValueError):
        mean_ci([])


def test_overlapping_intervals_mean_no_measurable_difference() -> None:
    assert overlap((0.90, 0.02), (0.93, 0.015))
    assert not overlap((0.90, 0.01), (0.93, 0.01))
    assert format_ci(0.91234, 0.0123) == "0.912 ± 0.012"


def test_a_list_of_values_prints_as_its_mean_and_interval_or_one_value_alone() -> None:
    mean, half = mean_ci([0.1, 0.15, 0.2])
    assert format_values([0.1, 0.15, 0.2], digits=2) == format_ci(mean, half, 2) == "0.15 ± 0.12"
    assert format_values([2.0], digits=1) == "2.0"
