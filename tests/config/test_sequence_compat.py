"""Sequences refuse what needs images, images refuse sequence models, naming the field."""

from __future__ import annotations

import pytest

from fedrobust.errors import FedrobustError
from fedrobust.scenario import parse_scenario

ROWS = {"dataset": "digits", "sequence": "rows", "partition": {"kind": "iid", "num_clients": 4}}
DP = {"mode": "sample", "noise_multiplier": 1.0}


def scenario(data: dict | None = None, **sections: object) -> object:
    return parse_scenario({"name": "s", "data": data or ROWS, "model": {"name": "gru"}, **sections})


@pytest.mark.parametrize(
    ("data", "sections", "field", "words"),
    [
        (ROWS, {"model": {"name": "cnn"}}, "model.name", "needs images"),
        (ROWS, {"model": {"name": "resnet"}}, "model.name", "needs images"),
        ({**ROWS, "sequence": None}, {}, "model.name", "set data.sequence: rows"),
        ({**ROWS, "augment": [{"name": "noise"}, {"name": "flip"}]}, {}, "data.augment.1",
         "moves pixels"),
        ({**ROWS, "feature_shift": {"kind": "rotate"}}, {}, "data.feature_shift.kind",
         "rotate turns images"),
        (ROWS, {"model": {"name": "mlp", "normalize": {"mean": [0.3], "std": [0.3]}}},
         "model.normalize", "image channels"),
        (ROWS, {"continual": {"setting": "domain_incremental",
                              "domain": {"kind": "rotate"}}},
         "continual.domain.kind", "permute works"),
        (ROWS, {"privacy": {"dp": {**DP, "grad_sample_mode": "ghost"}}},
         "privacy.dp.grad_sample_mode", "parameter tying"),
    ],
)  # fmt: skip
def test_refusals_name_the_field(data: dict, sections: dict, field: str, words: str) -> None:
    with pytest.raises(FedrobustError) as info:
        scenario(data, **sections)
    assert info.value.where == field
    assert words in info.value.what


@pytest.mark.parametrize(
    "sections",
    [
        {"model": {"name": "mlp"}},
        {"model": {"name": "transformer"}, "privacy": {"dp": {**DP, "grad_sample_mode": "ghost"}}},
        {"privacy": {"dp": DP}},
        {"privacy": {"secure_aggregation": {}}},
        {"defense": {"name": "median"}},
        {"attack": {"kind": "backdoor", "count": 1}},
        {"adversarial": {"training": {"method": "pgd_at", "eps": 0.05},
                         "evaluation": {"attacks": ["pgd"], "eps": [0.05]}}},
        {"continual": {"setting": "domain_incremental", "domain": {"kind": "permute"},
                       "method": "replay"}},
        {"continual": {"setting": "class_incremental", "tasks": [[0, 1], [2, 3]]}},
    ],
)  # fmt: skip
def test_what_works_on_sequences_validates(sections: dict) -> None:
    data = {**ROWS, "augment": [{"name": "noise"}], "feature_shift": {"kind": "contrast"}}
    scenario(data, **sections)
