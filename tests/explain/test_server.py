"""The server hook: it explains the kept model after the last round, records an error
instead of raising it; and the view works: on a model trained with a backdoor (rounds run
in this process against the real ClientApp handlers), the trigger holds far more of the
attribution of triggered inputs than of clean ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from fedrobust.apps.server.loop import run_federation

from fedrobust.data import build_federation
from fedrobust.explain.server import ExplainHook
from fedrobust.federation.server_hooks import ServerSetup
from fedrobust.models.build import build_model
from fedrobust.scenario import parse_scenario
from tests.grid import InProcessGrid

DOC: dict[str, Any] = {
    "name": "explained",
    "seed": 1,
    "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}},
    "model": {"name": "mlp", "hidden": [16]},
}


def hook_for(run: Path, explain: dict[str, Any]) -> tuple[ExplainHook, torch.nn.Module]:
    scenario = parse_scenario({**DOC, "evaluation": {"explain": explain}})
    fed = build_federation(scenario.data, scenario.seed)
    hook = ExplainHook.create(ServerSetup(scenario, fed, {}, run))
    assert hook is not None
    return hook, build_model(scenario.model, fed.spec)


def test_the_hook_explains_the_kept_model(tmp_path: Path) -> None:
    hook, model = hook_for(tmp_path, {"method": "integrated_gradients", "samples": 10})
    final = hook.finish(model, {})["explain"]
    assert final["integrated_gradients"]["samples"] == 10
    assert final["integrated_gradients"]["mean_abs_delta"] < 0.05


def test_an_error_in_the_hook_is_recorded_not_raised(tmp_path: Path) -> None:
    hook, model = hook_for(tmp_path, {"samples": 10})
    model = torch.nn.Linear(3, 2)  # not the scenario's model: attributing it fails
    final = hook.finish(model, {})
    assert "error" in final["explain"]


def test_no_hook_without_the_section(tmp_path: Path) -> None:
    scenario = parse_scenario({**DOC, "evaluation": {}})
    fed = build_federation(scenario.data, scenario.seed)
    assert ExplainHook.create(ServerSetup(scenario, fed, {}, tmp_path)) is None


SCENARIO = {
    "name": "explained_backdoor",
    "seed": 0,
    "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 4}},
    "model": {"name": "cnn", "normalize": {"mean": [0.3], "std": [0.37]}},
    "train": {
        "rounds": 6,
        "local_epochs": 3,
        "batch_size": 16,
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    },
    "attack": {"kind": "backdoor", "count": 1, "scale": 4.0, "target_class": 0},
    "evaluation": {"explain": {"method": "saliency", "samples": 60, "examples": 2}},
}


@pytest.mark.slow
@pytest.mark.e2e
def test_the_trigger_lights_up_on_triggered_inputs(tmp_path: Path, server_identity: None) -> None:
    out = tmp_path / "run"
    run_federation(InProcessGrid(4), parse_scenario(SCENARIO), out)
    doc = json.loads((out / "metrics.json").read_text())
    final = doc["final"]
    assert final["backdoor_success"] > 0.8
    row = final["explain"]["saliency"]
    trigger = json.loads((out / "explain" / "results.json").read_text())["saliency"]["trigger"]
    assert row["trigger_fraction_triggered"] > 3 * row["trigger_fraction_clean"]
    assert row["trigger_fraction_triggered"] > 3 * trigger["trigger_area"]
    assert "Interpretability (attribution maps)" in (out / "report.html").read_text()
