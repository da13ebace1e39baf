"""End to end: `fedrobust run` drives a real Flower simulation (3 clients x 2 rounds)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fedrobust.report.metrics import TIMING_KEYS

pytestmark = pytest.mark.e2e

SCENARIO = """\
name: tiny
seed: 7
data:
  dataset: digits
  partition: {kind: dirichlet, num_clients: 3, alpha: 1.0}
model: {name: mlp, hidden: [32]}
train:
  rounds: 3
  batch_size: 16
  fraction_train: 0.67
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
strategy: {name: fedprox, proximal_mu: 0.01}
"""


def fedrobust(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedrobust.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def strip_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [strip_timing(v) for v in value]
    return value


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scn") / "tiny.yaml"
    path.write_text(SCENARIO)
    return path


@pytest.fixture(scope="module")
def first_run(
    scenario_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("run") / "a"
    return out, fedrobust("run", str(scenario_file), "--out", str(out), "--rounds", "2")


def test_run_prints_rounds_and_writes_the_contract(
    first_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, result = first_run
    assert result.returncode == 0, result.stdout + result.stderr
    console = result.stdout + result.stderr
    assert "round 1/2  accuracy" in console and "round 2/2  accuracy" in console
    assert "final accuracy" in console
    for noise in ("Traceback", "Warning", "WARNING", "ray", "Ray"):
        assert noise not in console, console

    doc = json.loads((out / "metrics.json").read_text())
    assert doc["status"] == "completed"
    assert doc["scenario"]["name"] == "tiny" and doc["scenario"]["train"]["rounds"] == 2
    assert [r["round"] for r in doc["rounds"]] == [1, 2]
    for row in doc["rounds"]:
        assert 0.0 <= row["accuracy"] <= 1.0 and row["loss"] > 0
        assert row["sampled"] == 2 and row["aggregated"] == 2 and row["dropped"] == {}
        assert len(row["clients"]) == 2
    assert doc["rounds"][-1]["accuracy"] > doc["initial"]["accuracy"] + 0.2  # it learned
    final = doc["final"]
    assert final["accuracy"] == doc["rounds"][-1]["accuracy"]
    assert final["rounds_completed"] == 2 and final["wall_seconds"] > 0
    assert len(doc["data"]["clients"]) == 3

    state = torch.load(out / "model.pt", weights_only=True)
    assert set(state) == {"net.1.weight", "net.1.bias", "net.3.weight", "net.3.bias"}
    for name in ("curves.png", "label_histograms.png", "scenario.yaml", "logs/flwr.log"):
        assert (out / name).is_file(), name


def test_same_scenario_and_seed_give_identical_metrics(
    scenario_file: Path, first_run: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    out, _ = first_run
    again = fedrobust("run", str(scenario_file), "--out", str(tmp_path / "b"), "--rounds", "2")
    assert again.returncode == 0, again.stderr
    a = strip_timing(json.loads((out / "metrics.json").read_text()))
    b = strip_timing(json.loads((tmp_path / "b" / "metrics.json").read_text()))
    assert a.pop("token") != b.pop("token")
    assert a == b
    state_a = torch.load(out / "model.pt", weights_only=True)
    state_b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_bad_data_path_fails_fast_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.replace("dataset: digits", f"dataset: npz:{tmp_path}/none.npz"))
    result = fedrobust("run", str(path), "--out", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: {tmp_path}/none.npz: no such file (data.dataset npz:<path>)"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [["--rounds", "0"], ["--seed", "-3"], ["--bogus"]])
def test_bad_cli_arguments_exit_2(scenario_file: Path, args: list[str]) -> None:
    result = fedrobust("run", str(scenario_file), *args, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command) of every process."""
    table = subprocess.run(["ps", "-eo", "pid=,ppid=,comm="], capture_output=True, text=True).stdout
    rows = (line.split(None, 2) for line in table.splitlines())
    return {
        int(pid): (int(ppid), comm)
        for pid, ppid, *rest in rows
        for comm in [rest[0] if rest else ""]
    }


def _kill_orphaned_ray(before: set[int]) -> None:
    """Ray agents outlive a SIGKILLed raylet (reparented to init): end the ones we caused."""
    time.sleep(1)
    for pid, (ppid, comm) in _processes().items():
        if ppid == 1 and comm.startswith("ray::") and pid not in before:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every descendant (the SuperLink, SuperExec, simulation, Ray)."""
    children: dict[int, list[int]] = {}
    for child, (parent, _) in _processes().items():
        children.setdefault(parent, []).append(child)
    doomed, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        doomed.append(current)
        frontier.extend(children.get(current, []))
    for victim in doomed:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_run_killed_after_round_2_resumes_to_the_uninterrupted_result(
    scenario_file: Path, tmp_path: Path
) -> None:
    scenario = tmp_path / "adam.yaml"  # FedAdam: server state (moments) must survive too
    scenario.write_text(
        SCENARIO.replace(
            "strategy: {name: fedprox, proximal_mu: 0.01}", "strategy: {name: fedadam}"
        )
    )
    whole = fedrobust("run", str(scenario), "--out", str(tmp_path / "whole"), "--rounds", "5")
    assert whole.returncode == 0, whole.stderr
    rows = json.loads((tmp_path / "whole" / "metrics.json").read_text())["rounds"]
    assert all(row["dropped"] == {} for row in rows)  # FedAdam's float64 output fits clients
    assert rows[-1]["accuracy"] > rows[0]["accuracy"] + 0.1

    ray_before = set(_processes())
    out = tmp_path / "crashed"
    cmd = [
        sys.executable,
        "-m",
        "fedrobust.cli",
        "run",
        str(scenario),
        "--out",
        str(out),
        "--rounds",
        "5",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if len(json.loads((out / "metrics.json").read_text())["rounds"]) >= 2:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    _kill_tree(proc.pid)
    proc.wait()
    _kill_orphaned_ray(ray_before)
    crashed = json.loads((out / "metrics.json").read_text())
    assert crashed["status"] == "running" and 2 <= len(crashed["rounds"]) < 5

    resumed = fedrobust("run", str(scenario), "--out", str(out), "--rounds", "5", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    a = strip_timing(json.loads((tmp_path / "whole" / "metrics.json").read_text()))
    b = strip_timing(json.loads((out / "metrics.json").read_text()))
    a.pop("token"), b.pop("token")
    assert a == b

    changed = tmp_path / "changed.yaml"
    changed.write_text(scenario.read_text().replace("seed: 7", "seed: 8"))
    refused = fedrobust("run", str(changed), "--out", str(out), "--rounds", "6", "--resume")
    assert refused.returncode == 2
    assert "different scenario" in refused.stderr


def test_early_stopping_ends_an_overfitting_run_and_keeps_the_best_model(tmp_path: Path) -> None:
    path = tmp_path / "overfit.yaml"
    path.write_text(
        SCENARIO.replace("rounds: 3", "rounds: 25\n  local_epochs: 5")
        .replace("lr: 0.05", "lr: 0.2")
        .replace("fraction_train: 0.67", "early_stopping: {metric: loss, patience: 2}")
        .replace("alpha: 1.0}", "alpha: 1.0}\n  limited: {max_samples: 20}")
    )
    out = tmp_path / "run"
    result = fedrobust("run", str(path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / "metrics.json").read_text())
    final = doc["final"]
    assert final["stopped_early"] is True
    assert final["rounds_completed"] < 25
    assert final["rounds_completed"] == final["best_round"] + 2  # patience 2
    val_losses = [r["val_loss"] for r in doc["rounds"]]
    best = final["best_round"]
    assert final["best_val_loss"] == min(val_losses) == val_losses[best - 1]  # validation only
    assert final["model_round"] == best
    # final describes the kept model: the best round's test figures, not the last round's
    assert final["loss"] == doc["rounds"][best - 1]["loss"]
    assert final["accuracy"] == doc["rounds"][best - 1]["accuracy"]

    # model.pt is the best round's model: its test loss is final's
    from fedrobust.data import build_federation
    from fedrobust.models.build import build_model
    from fedrobust.scenario import load_scenario
    from fedrobust.train import evaluate

    scenario = load_scenario(path)
    fed = build_federation(scenario.data, scenario.seed)
    model = build_model(scenario.model, fed.spec)
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    assert evaluate(model, fed.x_test, fed.y_test).loss == pytest.approx(final["loss"], rel=1e-6)

    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "early stopping" in page
    rebuilt = fedrobust("report", str(out), timeout=120)
    assert rebuilt.returncode == 0 and (out / "report.html").stat().st_size > 10_000


def test_report_of_a_missing_run_dir_exits_2(tmp_path: Path) -> None:
    result = fedrobust("report", str(tmp_path / "nothing"), timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "metrics.json" in result.stderr


def test_cnn_on_flat_npz_data_is_refused_before_launch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "flat.npz", x=rng.random((60, 5)), y=np.arange(60) % 2)
    path = tmp_path / "s.yaml"
    path.write_text(
        SCENARIO.replace("dataset: digits", f"dataset: npz:{tmp_path}/flat.npz").replace(
            "model: {name: mlp, hidden: [32]}", "model: {name: cnn}"
        )
    )
    result = fedrobust("run", str(path), "--out", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: model.name: cnn needs image inputs")
