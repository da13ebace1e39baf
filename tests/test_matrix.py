"""The attack x defence matrix: cells, tables and the no-attack row (without simulation)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from fedrobust.errors import FedrobustError
from fedrobust.matrix import Cell, build_cells, markdown, run_matrix
from fedrobust.scenario import parse_scenario

BASE = {
    "name": "grid",
    "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 12}},
    "attack": {"kind": "sign_flip", "fraction": 0.25, "scale": 3.0},
    "defense": {"name": "trimmed_mean", "beta": 0.3},
}


def fake_metrics(cell: Cell) -> dict[str, Any]:
    accuracy = 0.9 if cell.attack == "none" or cell.defense != "fedavg" else 0.4
    final: dict[str, Any] = {"accuracy": accuracy, "loss": 1 - accuracy, "wall_seconds": 1.0}
    if cell.attack == "backdoor":
        final["backdoor_success"] = 0.7
    rounds = [{"round": 1, "defense": {"precision": 1.0, "recall": 0.5}}]
    return {"status": "completed", "scenario": cell.scenario.model_dump(mode="json"),
            "final": final, "rounds": rounds}  # fmt: skip


def test_cells_keep_the_parameters_that_apply_and_start_with_the_clean_row() -> None:
    cells = build_cells(parse_scenario(BASE), ["sign_flip", "ipm"], ["trimmed_mean", "krum"])
    assert [(c.attack, c.defense) for c in cells] == [
        ("none", "trimmed_mean"), ("none", "krum"), ("sign_flip", "trimmed_mean"),
        ("sign_flip", "krum"), ("ipm", "trimmed_mean"), ("ipm", "krum"),
    ]  # fmt: skip
    flip = cells[2].scenario
    assert flip.attack.scale == 3.0 and flip.attack.fraction == 0.25
    assert flip.defense.beta == 0.3
    ipm = cells[4].scenario.attack
    assert ipm.kind == "ipm" and ipm.fraction == 0.25 and "scale" not in ipm.model_fields_set
    assert cells[0].scenario.attack.kind == "none"
    assert cells[3].scenario.defense_num_malicious() == 3
    assert len({c.scenario.name for c in cells}) == 6


@pytest.mark.parametrize(
    ("attacks", "defenses", "where", "what"),
    [
        (["signflip"], ["median"], "--attacks", "unknown attack 'signflip'"),
        (["sign_flip"], ["foolsgold"], "--defenses", "unknown defense 'foolsgold'"),
        (["sign_flip"], ["bulyan"], "defense.num_malicious", "attack sign_flip x defense bulyan"),
    ],
)  # fmt: skip
def test_a_bad_grid_is_refused_before_anything_runs(
    attacks: list[str], defenses: list[str], where: str, what: str
) -> None:
    with pytest.raises(FedrobustError) as err:
        build_cells(parse_scenario(BASE), attacks, defenses)
    assert err.value.where == where and what in err.value.what


def test_run_matrix_writes_tables_heatmaps_and_report_and_survives_a_failed_cell(
    tmp_path: Path,
) -> None:
    cells = build_cells(parse_scenario(BASE), ["backdoor", "gaussian"], ["fedavg", "median"])

    def run_cell(cell: Cell, cell_dir: Path) -> dict[str, Any]:
        if cell.attack == "gaussian" and cell.defense == "median":
            raise RuntimeError("the simulation crashed")
        return fake_metrics(cell)

    rows = run_matrix(cells, tmp_path, run_cell, jobs=2)
    assert [r["attack"] for r in rows] == ["none"] * 2 + ["backdoor"] * 2 + ["gaussian"] * 2
    assert rows[-1]["error"] == "the simulation crashed"
    assert rows[2] == {
        "attack": "backdoor", "defense": "fedavg", "accuracy": 0.4, "loss": 0.6,
        "backdoor_success": 0.7, "precision": 1.0, "recall": 0.5, "wall_seconds": 1.0,
    }  # fmt: skip
    table = (tmp_path / "matrix.md").read_text()
    assert "| backdoor | 0.400 (bd 0.70) | 0.900 (bd 0.70) |" in table
    assert "| gaussian | 0.400 | failed |" in table
    with (tmp_path / "matrix.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 6
    assert json.loads((tmp_path / "matrix.json").read_text()) == rows
    for name in ("matrix_accuracy.png", "matrix_backdoor.png", "report.html"):
        assert (tmp_path / name).stat().st_size > 1000
    assert markdown(rows).count("\n") == 5


def test_finished_cells_are_not_run_again(tmp_path: Path) -> None:
    cells = build_cells(parse_scenario(BASE), ["gaussian"], ["median"])
    for cell in cells:
        cell_dir = tmp_path / "cells" / cell.name
        cell_dir.mkdir(parents=True)
        (cell_dir / "metrics.json").write_text(json.dumps(fake_metrics(cell)))

    def must_not_run(cell: Cell, cell_dir: Path) -> dict[str, Any]:
        raise AssertionError(f"{cell.name} ran again")

    rows = run_matrix(cells, tmp_path, must_not_run)
    assert [r["accuracy"] for r in rows] == [0.9, 0.9]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attacks", "foo", "--defenses", "median"], "error: --attacks: unknown attack 'foo'"),
        (["--attacks", "alie", "--defenses", ""], "error: --defenses: give at least one name"),
        (["--attacks", "sign_flip", "--defenses", "bulyan"],
         "error: defense.num_malicious: bulyan tolerating 3 attackers needs at least 15"),
    ],
)  # fmt: skip
def test_matrix_cli_refuses_a_bad_grid_with_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    from tests.test_cli_run import fedrobust

    path = tmp_path / "base.yaml"
    path.write_text(json.dumps(BASE))
    done = fedrobust("matrix", str(path), *args, "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert not (tmp_path / "out").exists()
