"""Explaining a run directly: results of several methods kept side by side, the headline
figures, an unreadable results file named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fedrobust.data import build_federation
from fedrobust.errors import FedrobustError
from fedrobust.explain.config import ExplainConfig
from fedrobust.explain.run import explain_run, read_results
from fedrobust.models.build import build_model
from fedrobust.scenario import parse_scenario

SCENARIO = parse_scenario(
    {
        "name": "explained",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}},
        "model": {"name": "mlp", "hidden": [8]},
    }
)


def test_each_method_adds_its_entry_and_the_summary_lists_them(tmp_path: Path) -> None:
    fed = build_federation(SCENARIO.data, SCENARIO.seed)
    torch.manual_seed(0)
    model = build_model(SCENARIO.model, fed.spec)
    explain_run(tmp_path, SCENARIO, fed, model, ExplainConfig(samples=6, examples=0))
    summary = explain_run(
        tmp_path, SCENARIO, fed, model, ExplainConfig(method="gradient_shap", samples=6, examples=2)
    )
    assert sorted(summary) == ["gradient_shap", "integrated_gradients"]
    assert summary["integrated_gradients"]["relative_error"] < 0.05
    assert "relative_error" not in summary["gradient_shap"]
    found = read_results(tmp_path)
    assert found["integrated_gradients"]["examples_picture"] is None
    assert found["gradient_shap"]["settings"]["background"] == 50
    assert sum(c["samples"] for c in found["gradient_shap"]["per_class"].values()) == 6


def test_an_unreadable_results_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "explain").mkdir()
    (tmp_path / "explain" / "results.json").write_text("{not json")
    with pytest.raises(FedrobustError, match="unreadable") as caught:
        read_results(tmp_path)
    assert caught.value.where.endswith("results.json")
