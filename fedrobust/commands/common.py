"""What several sub-commands share: overrides, name lists, run directories, a saved model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fedrobust.errors import FedrobustError
from fedrobust.rundir import RunDir


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The scenario overrides ``--rounds`` and ``--seed`` ask for."""
    result: dict[str, Any] = {}
    if getattr(args, "rounds", None) is not None:
        result["train.rounds"] = args.rounds
    if getattr(args, "seed", None) is not None:
        result["seed"] = args.seed
    return result


def names(text: str, option: str) -> list[str]:
    """The lower-cased names of a comma-separated ``option`` value; at least one."""
    found = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not found:
        raise FedrobustError(option, "give at least one name")
    return found


def require_run_dir(run_dir: Path) -> None:
    """Refuse a directory without metrics.json."""
    metrics = RunDir(run_dir).metrics
    if not metrics.is_file():
        raise FedrobustError(str(metrics), "no such file: not a run directory")


def load_model_for(target: Path, scenario_path: Path | None) -> tuple[Any, Any, Any]:
    """(scenario, federation, model) of a run directory or a model file."""
    import torch

    from fedrobust.data import build_federation
    from fedrobust.models.build import build_model
    from fedrobust.report.metrics import read_metrics
    from fedrobust.scenario import load_scenario, parse_scenario

    if target.is_dir():
        layout = RunDir(target)
        if not layout.metrics.is_file():
            raise FedrobustError(str(target), "not a run directory (no metrics.json)")
        model_path = layout.model
        scenario = (
            load_scenario(scenario_path)
            if scenario_path
            else parse_scenario(read_metrics(target)["scenario"])
        )
    elif target.is_file():
        if scenario_path is None:
            raise FedrobustError("--scenario", f"needed to evaluate a model file ({target})")
        model_path, scenario = target, load_scenario(scenario_path)
    else:
        raise FedrobustError(str(target), "no such run directory or model file")
    if not model_path.is_file():
        raise FedrobustError(str(model_path), "no such file: the run did not finish")
    fed = build_federation(scenario.data, scenario.seed)
    model = build_model(scenario.model, fed.spec)
    try:
        model.load_state_dict(torch.load(model_path, weights_only=True))
    except Exception as exc:  # noqa: BLE001 - any unreadable or mismatched file is a bad input
        raise FedrobustError(str(model_path), f"not a model of this scenario ({exc})") from None
    return scenario, fed, model
