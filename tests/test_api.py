"""The Python API: validate, load_run and RunResult on an in-process run; ``run`` itself
starts a real simulation (slow suite, and the example notebook)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import fedrobust
from fedrobust.errors import FedrobustError
from fedrobust.scenario import Scenario

DOC: dict[str, Any] = {
    "name": "api_tiny",
    "seed": 2,
    "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"rounds": 2, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.1}},
}


def test_validate_takes_a_path_a_mapping_or_a_scenario_with_overrides(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(DOC))
    from_file = fedrobust.validate(path)
    from_dict = fedrobust.validate(DOC)
    assert isinstance(from_file, Scenario) and from_file == from_dict
    again = fedrobust.validate(from_dict, rounds=5, seed=9)
    assert (again.train.rounds, again.seed) == (5, 9)
    assert from_dict.train.rounds == 2  # the input is not changed
    assert DOC["train"]["rounds"] == 2


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 0}}},
         "data.partition.num_clients"),
        ({"train": {"rounds": 1, "epochs": 3}}, "train.epochs"),
    ],
)  # fmt: skip
def test_validate_names_the_bad_field(change: dict[str, Any], where: str) -> None:
    with pytest.raises(FedrobustError) as err:
        fedrobust.validate({**DOC, **change})
    assert err.value.where == where
    with pytest.raises(FedrobustError) as err:
        fedrobust.validate(42)  # type: ignore[arg-type]
    assert err.value.where == "scenario"


def test_load_run_gives_figures_rounds_model_and_report(
    tmp_path: Path, server_identity: None
) -> None:
    from fedrobust.apps.server.loop import run_federation

    from tests.grid import InProcessGrid

    out = tmp_path / "run"
    final = run_federation(InProcessGrid(2), fedrobust.validate(DOC), out)
    result = fedrobust.load_run(out)
    assert result.status == "completed" and result.final == final
    assert result.scenario.name == "api_tiny"
    rounds = result.rounds
    assert list(rounds["round"]) == [1, 2]  # a DataFrame (pandas is installed here)
    assert list(rounds["accuracy"]) == [r["accuracy"] for r in result.metrics["rounds"]]
    assert "clients" not in rounds.columns
    model = result.model()
    saved = torch.load(out / "model.pt", weights_only=True)
    assert all(torch.equal(model.state_dict()[k], saved[k]) for k in saved)
    assert not model.training
    assert result.report_path == out / "report.html" and result.report_path.is_file()
    assert "api_tiny" in repr(result) and "completed" in repr(result)


def test_load_run_of_a_directory_without_metrics_names_it(tmp_path: Path) -> None:
    with pytest.raises(FedrobustError) as err:
        fedrobust.load_run(tmp_path)
    assert err.value.where == str(tmp_path.resolve())


def test_importing_the_package_does_not_load_the_api() -> None:
    import subprocess
    import sys

    code = "import sys, fedrobust; print('fedrobust.api' in sys.modules, 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_run_runs_the_simulation_and_returns_its_result(tmp_path: Path) -> None:
    result = fedrobust.run(DOC, out=tmp_path / "run", rounds=1)
    assert result.status == "completed" and len(result.metrics["rounds"]) == 1
    assert 0 <= result.final["accuracy"] <= 1
    assert (tmp_path / "run" / "model.pt").is_file()
