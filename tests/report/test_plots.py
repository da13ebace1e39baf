"""Report plots take every figure metrics.json holds."""

from __future__ import annotations


def test_the_robustness_plot_takes_the_worst_case_and_clean_subset_keys(tmp_path) -> None:
    from fedrobust.report.plots import plot_robustness

    robust = {"pgd@0.1": 0.5, "fgsm@0.1": 0.6, "worst@0.1": 0.45, "clean@subset": 0.9}
    metrics = {
        "final": {"accuracy": 0.9, "robust_accuracy": robust},
        "rounds": [{"round": 1, "accuracy": 0.9, "robust_accuracy": robust}],
    }
    assert plot_robustness(metrics, tmp_path / "robust.png").stat().st_size > 0
