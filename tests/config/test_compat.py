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


def poisoned(num_clients: int, attack: dict, defense: dict) -> object:
    return parse_scenario(
        {
            "name": "p",
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": num_clients}},
            "attack": attack,
            "defense": defense,
        }
    )


@pytest.mark.parametrize(
    ("num_clients", "attack", "defense", "field", "words"),
    [
        # Blanchard et al. 2017: n >= 2f + 3 (f = 3 needs 9; f + 3 = 6 is not enough)
        (8, {"kind": "sign_flip", "count": 3}, {"name": "krum"}, "defense.num_malicious",
         "at least 9 clients"),
        (8, {"kind": "sign_flip", "count": 3}, {"name": "multikrum"}, "defense.num_malicious",
         "at least 9 clients"),
        (10, {"kind": "sign_flip"}, {"name": "krum", "num_malicious": 4},
         "defense.num_malicious", "at least 11 clients"),
        # int(0.1 * 10) = 1 cut per side < 2 attackers
        (10, {"kind": "sign_flip", "count": 2}, {"name": "trimmed_mean", "beta": 0.1},
         "defense.beta", "at least f per side"),
        (10, {"kind": "alie", "count": 1}, {"name": "median"}, "attack.z", "Baruch"),
    ],
)  # fmt: skip
def test_defences_refuse_settings_they_cannot_tolerate_naming_the_field(
    num_clients: int, attack: dict, defense: dict, field: str, words: str
) -> None:
    with pytest.raises(FedrobustError) as info:
        poisoned(num_clients, attack, defense)
    assert info.value.where == field
    assert words in info.value.what


def test_defences_accept_the_bounds_they_need() -> None:
    poisoned(9, {"kind": "sign_flip", "count": 3}, {"name": "multikrum"})  # 9 = 2 * 3 + 3
    poisoned(10, {"kind": "sign_flip", "count": 2}, {"name": "trimmed_mean", "beta": 0.2})
    poisoned(10, {"kind": "alie", "count": 2}, {"name": "median"})  # z = Phi^-1(0.6) > 0
