"""The attack x defence matrix: cells, tables and the no-attack row (without simulation)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from fedrobust.errors import FedrobustError
from fedrobust.matrix import Cell, build_cells, markdown, run_matrix, seed_row
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


def test_bucketing_and_reproducible_go_with_every_rule_that_takes_them() -> None:
    base = {**BASE, "attack": {"kind": "sign_flip", "count": 1},
            "defense": {"name": "median", "bucketing": 2, "reproducible": True}}  # fmt: skip
    cells = build_cells(parse_scenario(base), ["sign_flip"], ["median", "dnc", "fltrust"])
    by_defense = {c.defense: c.scenario.defense for c in cells if c.attack == "sign_flip"}
    assert by_defense["median"].bucketing == 2 and by_defense["median"].reproducible
    assert by_defense["dnc"].bucketing == 2 and by_defense["dnc"].reproducible
    assert by_defense["fltrust"].bucketing is None  # compat.py refuses it: run without


@pytest.mark.parametrize(
    ("extra", "assumed"),
    [({}, 3), ({"defense": {"name": "multikrum", "num_malicious": 2}}, 2),
     ({"attack": {"kind": "none"}, "defense": {"name": "krum"}}, 2)],
)  # fmt: skip
def test_the_no_attack_row_assumes_the_attackers_of_the_attack_rows(
    extra: dict[str, Any], assumed: int
) -> None:
    """Multi-Krum and Bulyan without attackers must still discard f updates: the clean
    row measures their cost (f = 0 there made them equal FedAvg)."""
    base = parse_scenario({**BASE, **extra})  # 12 clients: fraction 0.25 -> 3, default 0.2 -> 2
    cells = build_cells(base, ["sign_flip"], ["krum", "multikrum", "median", "fedavg"])
    by_cell = {(c.attack, c.defense): c.scenario for c in cells}
    for defense in ("krum", "multikrum"):
        clean, attacked = by_cell[("none", defense)], by_cell[("sign_flip", defense)]
        assert clean.attack.kind == "none"
        assert clean.defense_num_malicious() == attacked.defense_num_malicious() == assumed
    assert by_cell[("none", "median")].defense.num_malicious is None  # median reads no f
    assert by_cell[("none", "fedavg")].defense.name == "fedavg"


def test_seeds_give_one_cell_per_seed_with_its_own_directory() -> None:
    base = parse_scenario({**BASE, "seed": 5})
    cells = build_cells(base, ["ipm"], ["median"], seeds=3)
    assert [(c.attack, c.seed, c.scenario.seed) for c in cells] == [
        ("none", 5, 5), ("none", 6, 6), ("none", 7, 7), ("ipm", 5, 5), ("ipm", 6, 6),
        ("ipm", 7, 7),
    ]  # fmt: skip
    assert str(cells[4].directory) == "cells/ipm__median/seed-6"
    assert cells[4].scenario.model_dump(exclude={"seed"}) == (
        build_cells(base, ["ipm"], ["median"])[1].scenario.model_dump(exclude={"seed"})
    )
    assert str(build_cells(base, ["ipm"], ["median"])[1].directory) == "cells/ipm__median"
    with pytest.raises(FedrobustError) as err:
        build_cells(parse_scenario({**BASE, "seed": 2**31 - 2}), ["ipm"], ["median"], seeds=3)
    assert err.value.where == "--seeds"


def test_seed_row_is_the_mean_and_hand_computed_t_interval() -> None:
    runs = [
        {"seed": 1, "attack": "ipm", "defense": "median", "accuracy": 0.80, "loss": 1.0,
         "backdoor_success": None, "precision": None, "recall": None, "wall_seconds": 2.0},
        {"seed": 2, "attack": "ipm", "defense": "median", "accuracy": 0.90, "loss": 1.0,
         "backdoor_success": None, "precision": None, "recall": None, "wall_seconds": 4.0},
        {"seed": 3, "attack": "ipm", "defense": "median", "accuracy": 0.85, "loss": 1.0,
         "backdoor_success": None, "precision": None, "recall": None, "wall_seconds": 3.0},
        {"seed": 4, "attack": "ipm", "defense": "median", "error": "crashed"},
    ]  # fmt: skip
    row = seed_row("ipm", "median", runs)
    assert row["seeds"] == [1, 2, 3, 4] and row["completed"] == 3
    assert row["accuracy"] == pytest.approx(0.85)
    # sd 0.05, t(0.975, 2) = 4.3027 (table): half-width 4.3027 * 0.05 / sqrt(3) = 0.12421
    assert row["accuracy_ci95"] == pytest.approx(0.12421, abs=1e-5)
    assert row["loss"] == 1.0 and row["loss_ci95"] == 0.0
    assert row["backdoor_success"] is None and row["backdoor_success_ci95"] is None
    assert row["failed_seeds"] == {"4": "crashed"} and "error" not in row
    assert row["per_seed"] == runs
    assert markdown([row]).splitlines()[2] == "| ipm | 0.850 ± 0.124 [3/4 seeds] |"
    everything_failed = seed_row("ipm", "median", runs[3:])
    assert everything_failed["error"] == "seed 4: crashed"
    assert "failed" in markdown([everything_failed])


def test_run_matrix_over_seeds_writes_mean_ci_and_per_seed_values(tmp_path: Path) -> None:
    cells = build_cells(parse_scenario(BASE), ["backdoor"], ["fedavg"], seeds=2)
    seen: list[Path] = []

    def run_cell(cell: Cell, cell_dir: Path) -> dict[str, Any]:
        seen.append(cell_dir.relative_to(tmp_path))
        doc = fake_metrics(cell)
        doc["final"]["accuracy"] += 0.02 * (cell.seed or 0)  # seeds 0, 1: 0.90, 0.92
        return doc

    rows = run_matrix(cells, tmp_path, run_cell, jobs=2)
    names = ("backdoor__fedavg", "none__fedavg")
    assert sorted(map(str, seen)) == [f"cells/{n}/seed-{s}" for n in names for s in (0, 1)]
    clean, attacked = rows
    assert (clean["attack"], clean["seeds"], clean["completed"]) == ("none", [0, 1], 2)
    assert clean["accuracy"] == pytest.approx(0.91)
    # sd = 0.02 / sqrt(2); half-width = t(0.975, 1) * sd / sqrt(2) = 12.7062 * 0.01
    assert clean["accuracy_ci95"] == pytest.approx(0.127062, abs=1e-5)
    assert [r["accuracy"] for r in clean["per_seed"]] == pytest.approx([0.90, 0.92])
    assert attacked["backdoor_success"] == 0.7 and attacked["backdoor_success_ci95"] == 0.0
    table = (tmp_path / "matrix.md").read_text()
    assert "| none | 0.910 ± 0.127 |" in table
    assert "| backdoor | 0.410 ± 0.127 (bd 0.70 ± 0.00) |" in table
    with (tmp_path / "matrix.csv").open() as handle:
        first = next(csv.DictReader(handle))
    assert first["seeds"] == "0 1" and float(first["accuracy_ci95"]) == pytest.approx(
        0.127062, abs=1e-5
    )
    assert json.loads((tmp_path / "matrix.json").read_text()) == rows


@pytest.mark.parametrize(
    ("attacks", "defenses", "where", "what"),
    [
        (["signflip"], ["median"], "--attacks", "unknown attack 'signflip'"),
        (["sign_flip"], ["foolsgold"], "--defenses", "unknown defense 'foolsgold'"),
        # the no-attack row assumes the attack rows' 3 attackers too, so it fails first
        (["sign_flip"], ["bulyan"], "defense.num_malicious", "attack none x defense bulyan"),
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
