"""Summary of repeated runs: flattening, mean, sd and the Student-t 95 % CI by hand."""

from __future__ import annotations

import json
import math

import pytest

from fedrobust.report.summary import flatten, summarize, summary_markdown

# Student t quantiles t(0.975, df) from a printed table (not from scipy).
T_975_DF1 = 12.7062047
T_975_DF2 = 4.30265273


def test_flatten_keeps_finite_numbers_under_dotted_keys() -> None:
    final = {
        "accuracy": 0.9,
        "rounds_completed": 3,
        "stopped_early": False,
        "dp_mode": "sample",
        "per_class_recall": [0.1, 0.2],
        "loss": float("nan"),
        "best_round": None,
        "robust_accuracy": {"pgd@0.1": 0.5, "fgsm": {"0.2": 0.4}},
        "continual": {"forgetting": 0.05, "matrix": [[1.0]]},
        "personalized": {"mean": 0.8, "per_client": {"0": 0.7, "1": 0.9}},
    }
    assert flatten(final) == {
        "accuracy": 0.9,
        "rounds_completed": 3.0,
        "robust_accuracy.pgd@0.1": 0.5,
        "robust_accuracy.fgsm.0.2": 0.4,
        "continual.forgetting": 0.05,
        "personalized.mean": 0.8,  # client i of one seed is not client i of another
    }


def test_three_seeds_give_the_hand_computed_t_interval() -> None:
    summary = summarize(
        {
            9: {"accuracy": 0.85},
            7: {"accuracy": 0.80, "robust_accuracy": {"pgd@0.1": 0.3}},
            8: {"accuracy": 0.90, "robust_accuracy": {"pgd@0.1": 0.5}},
        }
    )
    assert summary["seeds"] == [7, 8, 9]
    assert summary["confidence"] == 0.95
    acc = summary["figures"]["accuracy"]
    # mean 0.85; deviations -0.05, 0.05, 0 -> sd = sqrt(0.005 / 2) = 0.05
    # half-width = t(0.975, 2) * 0.05 / sqrt(3) = 0.124207
    half = T_975_DF2 * 0.05 / math.sqrt(3)
    assert acc["values"] == {7: 0.80, 8: 0.90, 9: 0.85}
    assert acc["n"] == 3
    assert acc["mean"] == pytest.approx(0.85, abs=1e-12)
    assert acc["sd"] == pytest.approx(0.05, abs=1e-12)
    assert acc["half_width"] == pytest.approx(half, abs=1e-7)
    assert acc["half_width"] == pytest.approx(0.1242069, abs=1e-6)
    assert acc["ci"] == pytest.approx([0.85 - half, 0.85 + half], abs=1e-7)
    # a figure two seeds have: df = 1; sd = sqrt(0.02) -> half-width = t * sd / sqrt(2) = t * 0.1
    pgd = summary["figures"]["robust_accuracy.pgd@0.1"]
    assert pgd["n"] == 2 and pgd["values"] == {7: 0.3, 8: 0.5}
    assert pgd["mean"] == pytest.approx(0.4)
    assert pgd["sd"] == pytest.approx(math.sqrt(0.02))
    assert pgd["half_width"] == pytest.approx(T_975_DF1 * 0.1, abs=1e-6)


def test_a_single_seed_has_a_mean_and_no_interval() -> None:
    stats = summarize({3: {"accuracy": 0.7}})["figures"]["accuracy"]
    assert stats == {"values": {3: 0.7}, "n": 1, "mean": 0.7, "sd": None,
                     "half_width": None, "ci": None}  # fmt: skip
    json.dumps(stats, allow_nan=False)  # no NaN in summary.json


def test_identical_seeds_have_a_zero_width_interval() -> None:
    stats = summarize({1: {"loss": 2.0}, 2: {"loss": 2.0}})["figures"]["loss"]
    assert stats["sd"] == 0.0 and stats["half_width"] == 0.0 and stats["ci"] == [2.0, 2.0]


def test_markdown_shows_mean_pm_half_width_seeds_failures_and_the_command() -> None:
    summary = summarize({7: {"accuracy": 0.80}, 8: {"accuracy": 0.90}, 9: {"accuracy": 0.85}})
    text = summary_markdown(
        summary, "tiny", "fedrobust repeat s.yaml --seeds 4", failed={10: "run failed: boom"}
    )
    assert "| figure | mean ± 95 % CI | n | seed 7 | seed 8 | seed 9 |" in text
    assert "| accuracy | 0.85 ± 0.1242 | 3 | 0.8 | 0.9 | 0.85 |" in text
    assert "- seed 10: run failed: boom" in text
    assert "fedrobust repeat s.yaml --seeds 4\n```" in text
