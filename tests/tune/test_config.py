"""The tune: section: dotted paths checked against the schema, distributions parsed."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from fedrobust.errors import FedrobustError
from fedrobust.scenario import Scenario, parse_scenario, scenario_to_yaml

BASE: dict[str, Any] = {
    "name": "t",
    "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}},
    "model": {"name": "mlp", "hidden": [16]},
}


def with_tune(tune: Any) -> Scenario:
    return parse_scenario({**BASE, "tune": tune})


def refused(tune: Any) -> FedrobustError:
    with pytest.raises(FedrobustError) as info:
        with_tune(tune)
    return info.value


def test_dotted_keys_are_the_space_and_plain_keys_the_settings() -> None:
    tune = with_tune(
        {
            "metric": "val_loss",
            "sampler": "random",
            "train.optimizer.lr": {"loguniform": [1e-3, 0.3]},
            "model.hidden": {"choice": [[64], [128, 64]]},
            "train.local_epochs": {"int": [1, 5], "step": 2},
            "train.optimizer.momentum": {"uniform": [0.0, 0.9]},
        }
    ).tune
    assert tune is not None
    assert (tune.metric, tune.direction, tune.sampler, tune.pruner) == (
        "val_loss", "minimize", "random", "median",
    )  # fmt: skip
    assert set(tune.space) == {
        "train.optimizer.lr", "model.hidden", "train.local_epochs", "train.optimizer.momentum",
    }  # fmt: skip
    lr = tune.space["train.optimizer.lr"]
    assert (lr.kind, lr.low, lr.high) == ("loguniform", 1e-3, 0.3)
    assert tune.space["model.hidden"].choices == [[64], [128, 64]]
    assert tune.space["train.local_epochs"].step == 2


def test_the_section_round_trips_through_the_recipe_and_yaml() -> None:
    scenario = with_tune(
        {"train.optimizer.lr": {"loguniform": [1e-3, 0.3]}, "model.hidden": {"choice": [[8], [16]]},
         "train.rounds": {"int": [2, 8], "log": True}}
    )  # fmt: skip
    assert scenario.model_dump(mode="json")["tune"]["train.optimizer.lr"] == {
        "loguniform": [1e-3, 0.3]
    }
    assert Scenario.model_validate_json(scenario.model_dump_json()) == scenario
    assert parse_scenario(yaml.safe_load(scenario_to_yaml(scenario))) == scenario


@pytest.mark.parametrize(
    ("tune", "where", "message"),
    [
        ({"train.optimizer.lrx": {"uniform": [0, 1]}}, "tune.train.optimizer.lrx",
         "train.optimizer has no field 'lrx'"),
        ({"trian.rounds": {"int": [1, 3]}}, "tune.trian.rounds", "the scenario has no field"),
        ({"train.rounds.x": {"int": [1, 3]}}, "tune.train.rounds.x", "is a value, not a section"),
        ({"model.hidden.0": {"int": [1, 3]}}, "tune.model.hidden.0", "is a value"),
        ({"output.dir": {"choice": ["a", "b"]}}, "tune.output.dir", "where results go"),
        ({"tune.metric": {"choice": ["val_loss", "val_accuracy"]}}, "tune.tune.metric",
         "cannot search itself"),
        ({"train..lr": {"uniform": [0, 1]}}, "tune.train..lr", "empty part"),
    ],
)  # fmt: skip
def test_a_path_that_names_no_field_is_refused_naming_it(
    tune: dict[str, Any], where: str, message: str
) -> None:
    error = refused(tune)
    assert error.where == where
    assert message in error.what


def test_paths_through_optional_sections_and_unions_are_fields() -> None:
    scenario = with_tune(
        {"train.early_stopping.patience": {"int": [2, 4]},
         "data.partition.alpha": {"uniform": [0.1, 1.0]}}
    )  # fmt: skip
    assert scenario.tune is not None and len(scenario.tune.space) == 2


def test_a_path_inside_another_searched_path_is_refused() -> None:
    error = refused(
        {"train.optimizer": {"choice": [{"name": "sgd"}, {"name": "adam"}]},
         "train.optimizer.lr": {"uniform": [0.01, 0.1]}}
    )  # fmt: skip
    assert error.where == "tune.train.optimizer.lr"
    assert "inside train.optimizer" in error.what


@pytest.mark.parametrize(
    ("dist", "message"),
    [
        ({"normal": [0, 1]}, "unknown 'normal'"),
        ({"uniform": [0, 1], "choice": [1, 2]}, "exactly one of"),
        ({"uniform": [0.5, 0.1]}, "low < high"),
        ({"uniform": [0.1]}, "takes [low, high]"),
        ({"uniform": ["a", "b"]}, ""),
        ({"loguniform": [0, 0.1]}, "loguniform needs low > 0"),
        ({"loguniform": [0.01, 0.1], "step": 0.01}, "loguniform takes no step"),
        ({"int": [1, 2.5]}, "whole-number"),
        ({"int": [1, 6], "step": 2}, "multiple of step"),
        ({"int": [0, 8], "log": True}, "low >= 1"),
        ({"choice": [1]}, "at least two values"),
        ({"choice": [[8], [8]]}, "repeats a value"),
        ({"choice": 8}, "takes a list"),
        ([0.01, 0.1], "a distribution is a mapping"),
    ],
)
def test_a_bad_distribution_is_refused_naming_its_path(dist: Any, message: str) -> None:
    error = refused({"train.optimizer.lr": dist})
    assert error.where == "tune.train.optimizer.lr"
    assert message in error.what


@pytest.mark.parametrize(
    ("tune", "where", "message"),
    [
        ({}, "tune", "names no field to search"),
        ({"metric": "val_loss"}, "tune", "names no field to search"),
        ({"seed": {"int": [0, 9]}}, "tune.seed", "picks noise"),
        ({"lr": {"uniform": [0, 1]}}, "tune.lr", "a search path is a dotted scenario field"),
        ({"metric": "accuracy", "train.rounds": {"int": [1, 3]}}, "tune.metric", "val_accuracy"),
        ({"pruner": "asha", "train.rounds": {"int": [1, 3]}}, "tune.pruner", "median"),
    ],
)  # fmt: skip
def test_an_empty_space_and_unknown_settings_are_refused(
    tune: dict[str, Any], where: str, message: str
) -> None:
    error = refused(tune)
    assert error.where == where
    assert message in error.what


def test_the_section_does_not_change_what_a_run_resumes() -> None:
    plain = parse_scenario(BASE)
    tuned = with_tune({"train.optimizer.lr": {"loguniform": [1e-3, 0.3]}})
    assert tuned.resume_digest() == plain.resume_digest()
