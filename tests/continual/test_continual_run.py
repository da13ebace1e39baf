"""End to end: task sequences in Flower simulations (split digits, 5 clients).

The default run checks the plumbing (every method at once, the accuracy matrix in
metrics.json and the report); the ``slow`` ones measure the issue's claims.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_cli_run import fedrobust

pytestmark = pytest.mark.e2e

SPLIT = {
    "name": "split",
    "seed": 0,
    "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 5}},
    "model": {"name": "mlp", "hidden": [128], "normalize": {"mean": [0.3], "std": [0.37]}},
    "train": {"rounds": 15, "local_epochs": 2, "batch_size": 16,
              "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}},
    "continual": {"setting": "class_incremental",
                  "tasks": [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]], "rounds_per_task": 3},
}  # fmt: skip


def run(tmp_path: Path, doc: dict[str, Any], name: str) -> dict[str, Any]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**doc, "name": name}))
    done = fedrobust("run", str(path), "--out", str(tmp_path / name), timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((tmp_path / name / "metrics.json").read_text())


def with_(doc: dict[str, Any], **continual: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(doc))
    out["continual"].update(continual)
    return out


@pytest.mark.slow  # ~50 s of simulation; each method is unit-tested in the default set
def test_every_method_at_once_fills_the_accuracy_matrix_and_the_report(tmp_path: Path) -> None:
    tiny = with_(SPLIT, tasks=[[0, 1], [2, 3], [4, 5]], rounds_per_task=1, schedule="own",
                 method="ewc+replay+lwf", replay={"buffer_size": 50},
                 ewc={"fisher_samples": 20})  # fmt: skip
    tiny["data"]["partition"]["num_clients"] = 3
    tiny["train"]["rounds"] = 3
    doc = run(tmp_path, tiny, "tiny")
    assert [r["task"] for r in doc["rounds"]] == [0, 1, 2]
    for r in doc["rounds"]:
        assert len(r["task_accuracy"]) == 3
    cont = doc["final"]["continual"]
    matrix = cont["accuracy_matrix"]
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    assert matrix[2] == doc["rounds"][2]["task_accuracy"]
    assert cont["average_accuracy"] == pytest.approx(sum(matrix[2]) / 3)
    assert cont["bwt"] == pytest.approx(
        ((matrix[2][0] - matrix[0][0]) + (matrix[2][1] - matrix[1][1])) / 2
    )
    assert "Continual learning" in (tmp_path / "tiny" / "report.html").read_text()
    again = fedrobust("run", str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / "tiny"),
                      "--resume", "--rounds", "4")  # fmt: skip
    assert again.returncode == 2 and "continual runs cannot resume" in again.stderr


@pytest.mark.slow
def test_replay_beats_no_method_class_incrementally(tmp_path: Path) -> None:
    none = run(tmp_path, SPLIT, "none")["final"]["continual"]
    replay = run(tmp_path, with_(SPLIT, method="replay"), "replay")["final"]["continual"]
    # measured in-process with the same recipe: 0.19 vs 0.89
    assert none["average_accuracy"] < 0.35
    assert replay["average_accuracy"] > none["average_accuracy"] + 0.40
    assert replay["forgetting"] < none["forgetting"]


@pytest.mark.slow
def test_ewc_beats_no_method_task_incrementally(tmp_path: Path) -> None:
    doc = with_(SPLIT, setting="task_incremental", tasks=[[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]],
                rounds_per_task=6, ewc={"lambda": 100.0, "anchor": "global"})  # fmt: skip
    doc["model"]["hidden"] = [16]
    doc["train"].update(rounds=12, local_epochs=10,
                        optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.0})  # fmt: skip
    none = run(tmp_path, doc, "none")["final"]["continual"]
    ewc = run(tmp_path, with_(doc, method="ewc"), "ewc")["final"]["continual"]
    # measured in-process with the same recipe: 0.925 vs 0.970 (task 0: 0.88 vs 0.97); the
    # claim is the global anchor's (with anchor local, one run: 0.947 vs 0.928)
    assert ewc["average_accuracy"] > none["average_accuracy"] + 0.02
    assert ewc["forgetting"] < none["forgetting"]


SOTA = Path(__file__).parents[2] / "benchmarks" / "scenarios" / "continual_sota"


@pytest.mark.slow  # ~2 x 50 s of simulation
def test_derpp_meets_the_split_digits_target_and_er_ace_learns_each_new_task(
    tmp_path: Path,
) -> None:
    """The continual issue's target on its own protocol (benchmarks/scenarios/continual_sota:
    split digits, 5 two-class tasks x 3 rounds, 4 IID clients, a 200-example buffer), seed 0:
    DER++ with its default settings reaches >= 0.90 average accuracy with forgetting
    <= 0.08 (3 seeds: docs/results.md); ER-ACE, whose memory batch now holds the current
    task beside the buffer, no longer lags (it scored 0.753 on seed 0 without it)."""
    derpp = run(tmp_path, yaml.safe_load((SOTA / "4_derpp.yaml").read_text()), "derpp")
    cont = derpp["final"]["continual"]
    assert cont["average_accuracy"] >= 0.90 and cont["forgetting"] <= 0.08, cont
    er_ace = run(tmp_path, yaml.safe_load((SOTA / "5_er_ace.yaml").read_text()), "er_ace")
    cont = er_ace["final"]["continual"]
    assert cont["average_accuracy"] >= 0.85 and cont["forgetting"] <= 0.10, cont
