"""The head methods' refusals: wa only class-incrementally but beside SecAgg+, client-level
DP, defences and any strategy; class_aware only where it sees each averaged reply."""

from __future__ import annotations

from typing import Any

import pytest

from fedrobust.errors import FedrobustError
from fedrobust.scenario import Scenario, parse_scenario

SECAGG = {"secure_aggregation": {"num_shares": 3, "reconstruction_threshold": 2}}
CLIENT_DP = {"dp": {"mode": "client", "noise_multiplier": 1.0, "clipping": "fixed",
                    "clipping_norm": 0.5, "side": "client", "delta": 1.0e-3}}  # fmt: skip


def scenario(
    method: str, setting: str = "class_incremental", schedule: str = "together", **sections: Any
) -> Scenario:
    tasks = {"domain": {"num_tasks": 2}} if setting == "domain_incremental" else {
        "tasks": [[0, 1], [2, 3]]}  # fmt: skip
    return parse_scenario({
        "name": "head",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 4}},
        "continual": {"setting": setting, "method": method, "schedule": schedule, **tasks},
        **sections,
    })  # fmt: skip


@pytest.mark.parametrize(
    ("method", "setting", "sections", "words"),
    [
        ("wa", "task_incremental", {}, "only class_incremental"),
        ("replay+wa", "domain_incremental", {}, "only class_incremental"),
        ("class_aware", "domain_incremental", {}, "every class in every task"),
        ("replay+class_aware", "class_incremental", {"privacy": SECAGG}, "sees only the sum"),
        ("class_aware", "class_incremental", {"defense": {"name": "median"}}, "defense.name"),
        ("class_aware", "class_incremental", {"privacy": CLIENT_DP}, "client-level DP"),
        ("class_aware", "class_incremental", {"strategy": {"name": "fedadam"}}, "'fedadam'"),
    ],
)
def test_head_methods_refuse_what_they_cannot_work_with(
    method: str, setting: str, sections: dict, words: str
) -> None:
    with pytest.raises(FedrobustError) as info:
        scenario(method, setting, **sections)
    assert info.value.where == "continual.method"
    assert words in info.value.what


@pytest.mark.parametrize(
    ("method", "setting", "sections"),
    [
        ("replay+wa", "class_incremental", {"privacy": SECAGG}),
        ("replay+wa", "class_incremental", {"privacy": CLIENT_DP}),
        ("wa", "class_incremental", {"defense": {"name": "median"},
                                     "strategy": {"name": "fedadam"}}),
        ("derpp+class_aware+wa", "class_incremental", {"strategy": {"name": "fedprox"}}),
        ("class_aware", "task_incremental", {"schedule": "own"}),
    ],
)  # fmt: skip
def test_wa_composes_with_secagg_dp_and_defences_and_class_aware_with_averaging(
    method: str, setting: str, sections: dict
) -> None:
    sc = scenario(method, setting, **sections)
    assert sc.continual is not None and sc.continual.method == method
    assert parse_scenario(sc.model_dump(mode="json")) == sc
