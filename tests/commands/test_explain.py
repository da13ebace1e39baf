"""``fedrobust explain`` on a run directory built here (a model.pt and the metrics.json
it reads): results, figures, the report's section, the trigger view of a backdoored run,
refusals exiting 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from fedrobust.cli import main
from fedrobust.data import build_federation
from fedrobust.models.build import build_model
from fedrobust.scenario import parse_scenario

DOC: dict[str, Any] = {
    "name": "explained",
    "seed": 1,
    "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}},
    "model": {"name": "mlp", "hidden": [16]},
    "evaluation": {"explain": {"examples": 2}},  # fewer panels: faster figures
}


def cli(*args: str) -> int:
    try:
        return main(list(args))
    except SystemExit as exc:  # argparse's own refusals exit 2 too
        return int(exc.code or 0)


def fake_run(path: Path, **extra: Any) -> Path:
    """A finished run's directory: metrics.json with the scenario, and a model.pt."""
    scenario = parse_scenario({**DOC, **extra})
    fed = build_federation(scenario.data, scenario.seed)
    torch.manual_seed(0)
    model = build_model(scenario.model, fed.spec)
    path.mkdir(parents=True)
    torch.save(model.state_dict(), path / "model.pt")
    doc = {"scenario": scenario.model_dump(mode="json"), "rounds": [], "status": "completed"}
    (path / "metrics.json").write_text(json.dumps(doc))
    return path


def results(run: Path) -> dict[str, Any]:
    return json.loads((run / "explain" / "results.json").read_text())


def test_the_cli_writes_results_figures_and_a_report_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = fake_run(tmp_path / "run")
    assert cli("explain", str(run), "--samples", "20") == 0
    assert cli("explain", str(run), "--method", "saliency", "--samples", "10") == 0
    found = results(run)
    assert sorted(found) == ["integrated_gradients", "saliency"]  # the first one is kept
    ig = found["integrated_gradients"]
    assert ig["samples"] == 20 and len(ig["per_class"]) == 10
    assert ig["completeness"]["relative_error"] < 0.05
    assert "completeness" not in found["saliency"] and "trigger" not in found["saliency"]
    for name in ("integrated_gradients", "saliency"):
        for picture in ("classes", "examples"):
            assert (run / "explain" / f"{name}-{picture}.png").is_file()
    maps = __import__("numpy").load(run / "explain" / "saliency-maps.npz")
    assert maps["maps_predicted"].shape == (10, 1, 8, 8)
    page = (run / "report.html").read_text()
    assert "Interpretability (attribution maps)" in page and page.count("<h3>") >= 2
    out = capsys.readouterr().out
    assert "f(x) - f(baseline)" in out and "results:" in out


def test_a_backdoored_run_gets_the_trigger_view(tmp_path: Path) -> None:
    attack = {"kind": "backdoor", "count": 1, "target_class": 3, "trigger_size": 2}
    run = fake_run(tmp_path / "run", attack=attack)
    assert cli("explain", str(run), "--method", "saliency", "--samples", "30") == 0
    trigger = results(run)["saliency"]["trigger"]
    assert trigger["inputs"] == 27  # 3 of the 30 are of the target class
    assert trigger["trigger_area"] == pytest.approx(4 / 64)
    assert 0 <= trigger["fraction_clean"] <= 1 and 0 <= trigger["fraction_triggered"] <= 1
    assert (run / "explain" / trigger["picture"]).is_file()


def test_the_scenario_section_sets_the_defaults(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", evaluation={"explain": {"method": "occlusion", "samples": 12}})
    assert cli("explain", str(run)) == 0
    assert results(run)["occlusion"]["samples"] == 12


def test_bad_requests_exit_2_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("explain", str(tmp_path / "nowhere")) == 2
    assert "not a run directory" in capsys.readouterr().err
    run = fake_run(tmp_path / "run")
    assert cli("explain", str(run), "--method", "lime") == 2
    assert "--method: unknown attribution method 'lime'" in capsys.readouterr().err
    assert cli("explain", str(run), "--samples", "0") == 2
    (run / "model.pt").unlink()
    assert cli("explain", str(run)) == 2
    assert not (run / "explain" / "results.json").exists()


def test_a_missing_captum_exits_2_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    assert cli("explain", str(fake_run(tmp_path / "run"))) == 2
    assert "pip install 'fedrobust[explain]'" in capsys.readouterr().err
