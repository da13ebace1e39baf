"""``continual.ewc.aggregate`` refuses what would let the Fisher leak or has no EWC to feed,
naming the field; it composes with plain runs and robust defences."""

from __future__ import annotations

from typing import Any

import pytest

from fedrobust.errors import FedrobustError
from fedrobust.scenario import Scenario, parse_scenario

SECAGG = {"secure_aggregation": {"num_shares": 3, "reconstruction_threshold": 2}}
CLIENT_DP = {"dp": {"mode": "client", "noise_multiplier": 1.0}}


def scenario(method: str = "ewc", **sections: Any) -> Scenario:
    return parse_scenario({
        "name": "agg",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 5}},
        "continual": {"setting": "class_incremental", "tasks": [[0, 1], [2, 3]],
                      "method": method, "ewc": {"aggregate": True}},
        **sections,
    })  # fmt: skip


@pytest.mark.parametrize(
    ("method", "sections", "field", "words"),
    [
        ("replay", {}, "continual.ewc.aggregate", "applies to a method with ewc"),
        ("none", {}, "continual.ewc.aggregate", "applies to a method with ewc"),
        ("ewc", {"privacy": SECAGG}, "continual.ewc.aggregate", "unmasked"),
        ("ewc+replay", {"privacy": CLIENT_DP}, "continual.ewc.aggregate", "client-level DP"),
    ],
)
def test_aggregate_is_refused_without_ewc_under_secagg_and_client_level_dp(
    method: str, sections: dict, field: str, words: str
) -> None:
    with pytest.raises(FedrobustError) as info:
        scenario(method, **sections)
    assert info.value.where == field
    assert words in info.value.what


def test_aggregate_composes_with_ewc_combinations_and_robust_defences() -> None:
    assert scenario("ewc+replay").continual.ewc.aggregate  # type: ignore[union-attr]
    assert scenario("ewc", defense={"name": "median"}).defense.name == "median"
    plain = parse_scenario({
        "name": "agg", "data": {"dataset": "digits"},
        "continual": {"setting": "class_incremental", "tasks": [[0, 1], [2, 3]],
                      "method": "ewc"},
    })  # fmt: skip
    assert plain.continual.ewc.aggregate is False  # type: ignore[union-attr]
