"""Combinations whose epsilon would be wrong are refused, naming the field."""

from __future__ import annotations

import pytest

from fedrobust.errors import FedrobustError
from fedrobust.scenario import parse_scenario

DP = {"mode": "sample", "noise_multiplier": 1.0}
TASKS = {"setting": "class_incremental", "tasks": [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]}


def scenario(**sections: object) -> object:
    doc = {
        "name": "c",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}},
        "privacy": {"dp": DP},
        **sections,
    }
    return parse_scenario(doc)


@pytest.mark.parametrize(
    ("sections", "field", "words"),
    [
        ({"train": {"class_weights": "balanced"}}, "train.class_weights", "private label"),
        ({"privacy": {"dp": {**DP, "poisson_sampling": False}}},
         "privacy.dp.poisson_sampling", "approximation"),
        ({"continual": {**TASKS, "rounds_per_task": 1}},
         "continual", "task's subset"),
    ],
)  # fmt: skip
def test_dp_sgd_refuses_what_would_void_its_epsilon(sections: dict, field: str, words: str) -> None:
    with pytest.raises(FedrobustError) as info:
        scenario(**sections)
    assert info.value.where == field
    assert words in info.value.what


def test_the_same_settings_without_dp_sgd_are_accepted() -> None:
    parse_scenario(
        {
            "name": "c",
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}},
            "train": {"class_weights": "balanced"},
            "continual": {
                "setting": "class_incremental",
                "tasks": [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]],
                "rounds_per_task": 1,
            },
        }
    )
