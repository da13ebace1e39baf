"""The personalization section: each method's fields, and what it refuses, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from fedrobust.config.checks import check_with_data
from fedrobust.errors import FedrobustError
from fedrobust.privacy.canaries import scenario_federation
from fedrobust.scenario import parse_scenario, scenario_to_yaml


def _doc(**sections: Any) -> dict[str, Any]:
    data = {"dataset": "digits", "local_test_fraction": 0.2,
            "partition": {"kind": "iid", "num_clients": 3}}  # fmt: skip
    return {"name": "p", "data": data, **sections}


def test_ditto_lambda_reads_and_writes_under_its_yaml_name() -> None:
    sc = parse_scenario(_doc(personalization={"method": "ditto", "lambda": 0.5}))
    assert sc.personalization is not None and sc.personalization.lambda_ == 0.5
    assert "lambda: 0.5" in scenario_to_yaml(sc)
    assert parse_scenario(sc.model_dump(mode="json")) == sc  # the resolved scenario reloads


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        (_doc(personalization={"method": "fedper", "lambda": 0.5}), "personalization.lambda",
         "does not apply"),
        (_doc(personalization={"method": "finetune", "head_layers": 2}),
         "personalization.head_layers", "does not apply"),
        (_doc(personalization={"method": "knn"}), "personalization.method", ""),
        ({"name": "p", "personalization": {"method": "fedper"}}, "data.local_test_fraction",
         "local test split"),
        (_doc(personalization={"method": "fedrep"},
              privacy={"dp": {"mode": "sample", "noise_multiplier": 1.0}}),
         "personalization.method", "outside DP-SGD"),
        (_doc(personalization={"method": "ditto"},
              continual={"setting": "class_incremental", "tasks": [[0, 1], [2, 3]]}),
         "personalization", "continual"),
    ],
)  # fmt: skip
def test_settings_that_cannot_work_are_refused_naming_the_field(
    doc: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(FedrobustError) as info:
        parse_scenario(doc)
    assert info.value.where == field
    assert words in info.value.what


@pytest.mark.parametrize("method", ["fedper", "ditto", "finetune", "fedbn"])
def test_methods_whose_private_state_comes_from_dp_sgd_or_is_never_sent_compose_with_it(
    method: str,
) -> None:
    dp = {"dp": {"mode": "sample", "noise_multiplier": 1.0}}
    assert parse_scenario(_doc(personalization={"method": method}, privacy=dp)).personalization


@pytest.mark.parametrize(
    ("model", "personalization", "field"),
    [
        ({"name": "mlp"}, {"method": "fedbn"}, "personalization.method"),
        ({"name": "mlp", "hidden": [16]}, {"method": "fedrep", "head_layers": 2},
         "personalization.head_layers"),
    ],
)  # fmt: skip
def test_private_layers_the_model_does_not_have_are_refused_before_the_run(
    model: dict[str, Any], personalization: dict[str, Any], field: str
) -> None:
    sc = parse_scenario(_doc(model=model, personalization=personalization))
    with pytest.raises(FedrobustError) as info:
        check_with_data(sc, scenario_federation(sc))
    assert info.value.where == field
