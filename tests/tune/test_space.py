"""Every value a distribution can give must make a valid scenario; samples do."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from fedrobust.errors import FedrobustError
from fedrobust.scenario import load_scenario
from fedrobust.tune.space import build, check_space, read_mapping, suggest, with_values

from .conftest import SCENARIO, write_scenario


def space_of(path: Path) -> dict[str, Any]:
    scenario = load_scenario(path)
    assert scenario.tune is not None
    return scenario.tune.space


@pytest.mark.parametrize(
    ("tune", "where", "message"),
    [
        ({"train.optimizer.lr": {"loguniform": [0.001, 20]}}, "tune.train.optimizer.lr", "20"),
        ({"model.activation": {"choice": ["relu", "swish"]}}, "tune.model.activation", "swish"),
        ({"model.channels": {"choice": [[8], [16]]}}, "tune.model.channels",
         "does not apply to model 'mlp'"),
        ({"train.optimizer.name": {"choice": ["sgd", "lbfgs"]}}, "tune.train.optimizer.name",
         "lbfgs"),
        ({"data.val_fraction": {"uniform": [0.1, 1.0]}}, "tune.data.val_fraction", "1.0"),
    ],
)  # fmt: skip
def test_a_value_the_schema_refuses_is_caught_before_any_trial(
    tmp_path: Path, tune: dict[str, Any], where: str, message: str
) -> None:
    path = write_scenario(tmp_path, tune)
    with pytest.raises(FedrobustError) as info:
        check_space(read_mapping(path), space_of(path))
    assert info.value.where == where
    assert message in info.value.what
    assert "which the scenario refuses" in info.value.what


def test_with_values_sets_paths_drops_tune_and_leaves_the_file_mapping_alone() -> None:
    raw = yaml.safe_load(SCENARIO)
    before = copy.deepcopy(raw)
    doc = with_values(raw, {"train.optimizer.lr": 0.1, "train.early_stopping.patience": 2,
                            "model.hidden": [8, 4]})  # fmt: skip
    assert raw == before
    assert "tune" not in doc
    assert doc["train"]["optimizer"] == {"name": "sgd", "lr": 0.1}
    assert doc["train"]["early_stopping"] == {"patience": 2}  # the section is created
    assert doc["model"]["hidden"] == [8, 4]


def test_samples_are_in_range_and_make_valid_scenarios(tmp_path: Path) -> None:
    path = write_scenario(
        tmp_path,
        {"train.optimizer.lr": {"loguniform": [0.001, 0.3]},
         "train.optimizer.momentum": {"uniform": [0.0, 0.9], "step": 0.3},
         "train.local_epochs": {"int": [1, 5], "step": 2},
         "train.batch_size": {"int": [8, 64], "log": True},
         "model.hidden": {"choice": [[16], [32, 16]]},
         "model.activation": {"choice": ["relu", "tanh"]}},
    )  # fmt: skip
    raw, space = read_mapping(path), space_of(path)
    check_space(raw, space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_hidden = set()
    for _ in range(25):
        trial = study.ask()
        values = suggest(trial, space)
        scenario = build(raw, values)
        assert 0.001 <= scenario.train.optimizer.lr <= 0.3
        assert scenario.train.optimizer.momentum in (0.0, 0.3, 0.6, 0.9)
        assert scenario.train.local_epochs in (1, 3, 5)
        assert 8 <= scenario.train.batch_size <= 64
        assert scenario.model.activation in ("relu", "tanh")
        assert scenario.tune is None
        seen_hidden.add(tuple(scenario.model.hidden or []))
        assert trial.params["model.hidden"] in ("[16]", "[32, 16]")  # stored as JSON text
        study.tell(trial, 0.5)
    assert seen_hidden == {(16,), (32, 16)}
