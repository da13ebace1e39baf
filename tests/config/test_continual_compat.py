"""The continual section's buffer methods: what they accept and what they refuse."""

from __future__ import annotations

import pytest

from fedrobust.errors import FedrobustError
from fedrobust.scenario import parse_scenario


def scenario(setting: str = "class_incremental", **continual: object) -> object:
    return parse_scenario({
        "name": "c",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}},
        "continual": {"setting": setting, "tasks": [[0, 1], [2, 3]], **continual},
    })  # fmt: skip


@pytest.mark.parametrize(
    ("continual", "field", "words"),
    [
        ({"method": "replay+der"}, "continual.method", "keep one"),
        ({"method": "derpp+er_ace"}, "continual.method", "keep one"),
        ({"method": "der", "replay": {"mode": "union"}}, "continual.replay.mode", "mode: mix"),
        ({"method": "der", "der": {"beta": 1.0}}, "continual.der.beta", "derpp only"),
        ({"method": "replay", "replay": {"mode": "union", "ratio": 2.0}},
         "continual.replay.ratio", "does not apply"),
        ({"method": "dert"}, "continual.method", "unknown method"),
    ],
)  # fmt: skip
def test_buffer_methods_refuse_combinations_that_make_no_sense(
    continual: dict, field: str, words: str
) -> None:
    with pytest.raises(FedrobustError) as info:
        scenario(**continual)
    assert info.value.where == field
    assert words in info.value.what


@pytest.mark.parametrize("method", ["der", "derpp", "er_ace"])
def test_buffer_methods_refuse_task_incremental(method: str) -> None:
    with pytest.raises(FedrobustError, match="current task's head"):
        scenario("task_incremental", method=method)


@pytest.mark.parametrize(
    "continual",
    [
        {"method": "derpp+ewc", "der": {"alpha": 0.2, "beta": 1.0}, "replay": {"balance": True}},
        {"method": "er_ace+lwf", "replay": {"buffer_size": 50, "ratio": 0.5}},
        {"method": "replay", "replay": {"mode": "union", "balance": True}},
        {"method": "der", "der": {"alpha": 1.0}},
    ],
)
def test_sensible_combinations_validate_and_their_dump_validates_again(continual: dict) -> None:
    sc = scenario(**continual)
    again = parse_scenario(sc.model_dump(mode="json"))  # type: ignore[attr-defined]
    assert again == sc
