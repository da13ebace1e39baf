"""Weight aligning (Zhao et al. 2020): the new classes' head rows scaled to the old ones'
mean norm, and the rounds and classes the server applies it to."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from fedrobust.continual.federated import client_offset
from fedrobust.continual.weight_align import align_weights, aligned_classes
from fedrobust.scenario import Scenario, parse_scenario


def test_new_rows_and_biases_are_scaled_by_the_ratio_of_mean_norms_computed_by_hand() -> None:
    weight = torch.tensor([[3.0, 4.0], [0.0, 5.0], [6.0, 8.0], [0.0, 20.0], [1.0, 1.0]])
    bias = torch.tensor([0.5, -0.5, 3.0, -6.0, 7.0])
    # old norms 5 and 5 (mean 5); new norms 10 and 20 (mean 15): gamma = 1/3
    aligned, new_bias, gamma = align_weights(weight, bias, old=[0, 1], new=[2, 3])
    assert gamma == pytest.approx(1 / 3)
    want = torch.tensor([[3.0, 4.0], [0.0, 5.0], [2.0, 8 / 3], [0.0, 20 / 3], [1.0, 1.0]])
    torch.testing.assert_close(aligned, want)
    torch.testing.assert_close(new_bias, torch.tensor([0.5, -0.5, 1.0, -2.0, 7.0]))
    assert weight[2].tolist() == [6.0, 8.0]  # the inputs are not changed
    rows = aligned.norm(dim=1)
    assert rows[2:4].mean() == pytest.approx(rows[:2].mean())


@pytest.mark.parametrize(("old", "new"), [([], [0, 1]), ([0, 1], [])])
def test_nothing_to_align_leaves_the_head_as_it_is(old: list[int], new: list[int]) -> None:
    weight, bias = torch.ones(2, 3), torch.zeros(2)
    assert align_weights(weight, bias, old, new) == (weight, bias, 1.0)


def test_zero_new_rows_are_left_as_they_are() -> None:
    weight = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    aligned, bias, gamma = align_weights(weight, None, old=[0], new=[1])
    assert gamma == 1.0 and bias is None and torch.equal(aligned, weight)


def scenario(schedule: str = "together", rounds: int = 6) -> Scenario:
    return parse_scenario({
        "name": "wa",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 4}},
        "train": {"rounds": rounds},
        "continual": {"setting": "class_incremental", "tasks": [[0, 1], [2, 3], [4, 5]],
                      "rounds_per_task": 2, "schedule": schedule, "method": "replay+wa"},
    })  # fmt: skip


def test_it_acts_after_every_round_but_those_of_the_first_task() -> None:
    sc = scenario(rounds=7)  # tasks 0, 0, 1, 1, 2, 2, then 2 stays
    acts: dict[int, Any] = {rnd: aligned_classes(sc, rnd) for rnd in range(1, 8)}
    assert {rnd for rnd, got in acts.items() if got is not None} == {3, 4, 5, 6, 7}
    assert acts[3] == acts[4] == ([0, 1], [2, 3])
    assert acts[5] == acts[7] == ([0, 1, 2, 3], [4, 5])


def test_under_own_schedules_classes_a_client_ahead_has_reached_count_as_new() -> None:
    sc = scenario("own")
    offsets = [client_offset(sc, pid) for pid in range(4)]
    assert max(offsets) == 1  # seed 0: some client runs a round ahead
    assert aligned_classes(sc, 2) is None  # the server's task 0, some clients already on 1
    assert aligned_classes(sc, 3) == ([0, 1], [2, 3])  # nobody is two rounds ahead
    assert aligned_classes(sc, 4) == ([0, 1], [2, 3, 4, 5])
    assert aligned_classes(sc, 6) == ([0, 1, 2, 3], [4, 5])
