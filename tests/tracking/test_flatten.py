"""One flattening for every tracker: a round's row -> named scalars, per-client series."""

from __future__ import annotations

import math

from fedrobust.tracking.flatten import client_series, flatten_figures
from fedrobust.tracking.mlflow_tracker import metric_key, scenario_params


def test_a_round_row_flattens_to_its_finite_numbers_by_path() -> None:
    row = {
        "round": 3,
        "accuracy": 0.5,
        "loss": float("nan"),
        "sampled": 4,
        "per_class_recall": [1.0, 0.25],
        "task_accuracy": [0.9, None, float("inf")],
        "robust_accuracy": {"pgd@0.1": 0.3, "clean@subset": 0.8},
        "secure_aggregation": {"contributors": 5, "dropouts": {"setup": 1}, "failure": None},
        "defense": {"name": "krum", "flagged": [2, 7], "selected": [1], "precision": 1.0},
        "malicious": [0, 1],
        "rejoined": [4],
        "privacy_valid": True,
        "dropped": {},
        "clients": [{"client": 0, "train_loss": 1.0}],
    }
    assert flatten_figures(row) == {
        "accuracy": 0.5,
        "sampled": 4.0,
        "per_class_recall/0": 1.0,
        "per_class_recall/1": 0.25,
        "task_accuracy/0": 0.9,
        "robust_accuracy/pgd@0.1": 0.3,
        "robust_accuracy/clean@subset": 0.8,
        "secure_aggregation/contributors": 5.0,
        "secure_aggregation/dropouts/setup": 1.0,
        "defense/precision": 1.0,
    }


def test_client_series_gather_each_figure_over_the_clients_that_report_it() -> None:
    clients = [
        {"client": 0, "num_examples": 10, "train_loss": 1.5, "epsilon": 2.0},
        {"client": 1, "num_examples": 20, "train_loss": math.nan, "flag": True},
    ]
    assert client_series(clients) == {
        "num_examples": [10.0, 20.0],
        "train_loss": [1.5],
        "epsilon": [2.0],
    }
    assert client_series([]) == {}


def test_mlflow_keys_and_params_are_what_mlflow_accepts() -> None:
    assert metric_key("robust_accuracy/pgd@0.1") == "robust_accuracy/pgd_at_0.1"
    assert metric_key("fairness/worst_10%") == "fairness/worst_10pct"
    assert metric_key("a:b(c)") == "a_b_c_"
    params = scenario_params(
        {"name": "s", "train": {"rounds": 2, "optimizer": {"lr": 0.1}}, "model": {"hidden": [16]},
         "continual": None, "note": "x" * 7000, "dropped": {}}
    )  # fmt: skip
    assert params == {
        "name": "s",
        "train.rounds": "2",
        "train.optimizer.lr": "0.1",
        "model.hidden": "[16]",
        "continual": "null",
        "note": "x" * 6000,
        "dropped": "{}",
    }
