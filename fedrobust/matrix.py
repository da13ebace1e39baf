"""The attack x defence matrix: one run per cell on the scenario's data and model.

``fedrobust matrix SCENARIO --attacks a,b --defenses x,y`` runs every cell (plus a
no-attack row) through the same simulation path as ``fedrobust run``, one run
directory per cell under ``OUT/cells/``, and writes ``OUT/matrix.md``, ``matrix.csv``,
``matrix.json``, heatmaps and ``report.html``. The tables are rewritten after each cell,
so an interrupted grid keeps what it finished; a rerun skips finished cells whose
scenario is unchanged.
"""

from __future__ import annotations

import csv
import html
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedrobust.errors import FedrobustError
from fedrobust.report.html import Section, embed_image, html_table, write_page
from fedrobust.report.plots import plot_matrix
from fedrobust.robust.config import ATTACK_FIELDS, defense_options, known_defenses
from fedrobust.rundir import REPORT_FILE, RunDir
from fedrobust.scenario import Scenario, parse_scenario

NO_ATTACK = "none"
CELLS_DIR = "cells"  # OUT/cells/<attack>__<defense>/ is each cell's run directory
CELL_FILE = "cell.yaml"  # the cell's scenario, in its run directory
MATRIX_MD = "matrix.md"
MATRIX_CSV = "matrix.csv"
MATRIX_JSON = "matrix.json"


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    attack: str
    defense: str
    scenario: Scenario

    @property
    def name(self) -> str:
        return f"{self.attack}__{self.defense}"


def build_cells(base: Scenario, attacks: list[str], defenses: list[str]) -> list[Cell]:
    """Every (attack, defence) scenario, validated before anything runs.

    Each cell keeps the base scenario and its ``attack``/``defense`` parameters where
    they apply to the cell's kind and name (``fraction``, ``scale``, ``num_malicious``,
    ...). The no-attack row comes first.

    Raises
    ------
    FedrobustError
        Naming the cell and the field, for an unknown name or a cell that cannot run.
    """
    for name in attacks:
        if name not in ATTACK_FIELDS or name == NO_ATTACK:
            known = ", ".join(k for k in ATTACK_FIELDS if k != NO_ATTACK)
            raise FedrobustError("--attacks", f"unknown attack '{name}'; known: {known}")
    for name in defenses:
        if name not in known_defenses():
            raise FedrobustError("--defenses", f"unknown defense '{name}'; known: "
                                 + ", ".join(known_defenses()))  # fmt: skip
    raw = base.model_dump(mode="json")
    attack_set = base.attack.model_dump(mode="json", exclude_unset=True)
    defense_set = base.defense.model_dump(mode="json", exclude_unset=True)
    cells = []
    for attack in [NO_ATTACK, *[a for a in attacks if a != NO_ATTACK]]:
        for defense in defenses:
            doc = json.loads(json.dumps(raw))
            doc["name"] = f"{base.name}__{attack}__{defense}"
            doc["attack"] = {"kind": attack}
            if attack != NO_ATTACK:
                keep = ATTACK_FIELDS[attack] | {"fraction", "count", "start_round"}
                doc["attack"].update({k: v for k, v in attack_set.items() if k in keep})
            keep = defense_options(defense)
            doc["defense"] = {
                "name": defense,
                **{k: v for k, v in defense_set.items() if k in keep},
            }
            try:
                scenario = parse_scenario(doc)
            except FedrobustError as exc:
                raise FedrobustError(
                    exc.where, f"{exc.what} (cell attack {attack} x defense {defense})"
                ) from None
            cells.append(Cell(attack, defense, scenario))
    return cells


def cell_row(cell: Cell, doc: dict[str, Any]) -> dict[str, Any]:
    """One CSV/JSON row from a finished cell's metrics.json."""
    final = doc["final"]
    precisions = [r["defense"]["precision"] for r in doc["rounds"]
                  if (r.get("defense") or {}).get("precision") is not None]  # fmt: skip
    recalls = [r["defense"]["recall"] for r in doc["rounds"]
               if (r.get("defense") or {}).get("recall") is not None]  # fmt: skip
    return {
        "attack": cell.attack,
        "defense": cell.defense,
        "accuracy": final["accuracy"],
        "loss": final["loss"],
        "backdoor_success": final.get("backdoor_success"),
        "precision": sum(precisions) / len(precisions) if precisions else None,
        "recall": sum(recalls) / len(recalls) if recalls else None,
        "wall_seconds": final.get("wall_seconds"),
    }


def finished(cell: Cell, cell_dir: Path) -> dict[str, Any] | None:
    """The cell's metrics.json when it completed with the same scenario, else ``None``."""
    path = RunDir(cell_dir).metrics
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same = doc.get("scenario") == cell.scenario.model_dump(mode="json")
    return doc if doc.get("status") == "completed" and same else None


def run_matrix(
    cells: list[Cell],
    out: Path,
    run_cell: Callable[[Cell, Path], dict[str, Any]],
    on_cell: Callable[[dict[str, Any]], None] | None = None,
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Run each cell with ``run_cell(cell, cell_dir)`` (which returns its metrics.json),
    ``jobs`` at a time, rewriting the matrix files (in grid order) after every cell.

    A failed cell gets an ``error`` row and the grid goes on.
    """
    done: dict[int, dict[str, Any]] = {}
    lock = threading.Lock()

    def one(index: int) -> None:
        cell = cells[index]
        cell_dir = out / CELLS_DIR / cell.name
        doc = finished(cell, cell_dir)
        try:
            row = cell_row(cell, doc if doc is not None else run_cell(cell, cell_dir))
        except Exception as exc:  # noqa: BLE001 - one failed cell must not lose the grid
            row = {"attack": cell.attack, "defense": cell.defense, "error": str(exc)}
        with lock:
            done[index] = row
            write_matrix([done[i] for i in sorted(done)], out)
            if on_cell is not None:
                on_cell(row)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(one, range(len(cells))))
    return [done[i] for i in range(len(cells))]


def _value(rows: list[dict[str, Any]], key: str) -> dict[tuple[str, str], float | None]:
    return {(r["attack"], r["defense"]): r.get(key) for r in rows}


def markdown(rows: list[dict[str, Any]]) -> str:
    """Final accuracy (backdoor success in brackets) per attack row and defence column."""
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    defenses = list(dict.fromkeys(r["defense"] for r in rows))
    by_cell = {(r["attack"], r["defense"]): r for r in rows}
    lines = ["| attack \\ defense | " + " | ".join(defenses) + " |",
             "|---|" + "---:|" * len(defenses)]  # fmt: skip
    for attack in attacks:
        cells = []
        for defense in defenses:
            row = by_cell.get((attack, defense))
            if row is None:
                cells.append("")
            elif "error" in row:
                cells.append("failed")
            else:
                text = f"{row['accuracy']:.3f}"
                if row.get("backdoor_success") is not None:
                    text += f" (bd {row['backdoor_success']:.2f})"
                cells.append(text)
        lines.append(f"| {attack} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_matrix(rows: list[dict[str, Any]], out: Path) -> None:
    """matrix.md, matrix.csv, matrix.json, heatmaps and report.html in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MATRIX_MD).write_text(markdown(rows), encoding="utf-8")
    (out / MATRIX_JSON).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    fields = ["attack", "defense", "accuracy", "loss", "backdoor_success", "precision",
              "recall", "wall_seconds", "error"]  # fmt: skip
    with (out / MATRIX_CSV).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k) for k in fields})
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    defenses = list(dict.fromkeys(r["defense"] for r in rows))
    sections = [Section("Final accuracy", embed_image(plot_matrix(
        _value(rows, "accuracy"), attacks, defenses, "final test accuracy",
        out / "matrix_accuracy.png")))]  # fmt: skip
    if any(r.get("backdoor_success") is not None for r in rows):
        png = plot_matrix(_value(rows, "backdoor_success"), attacks, defenses,
                          "backdoor success (lower is better)",
                          out / "matrix_backdoor.png", cmap="RdYlGn_r")  # fmt: skip
        sections.append(Section("Backdoor success", embed_image(png)))
    header = ["attack", "defense", "accuracy", "backdoor success", "precision", "recall",
              "seconds", "run"]  # fmt: skip
    table = [[r["attack"], r["defense"], r.get("accuracy", r.get("error", "")),
              "" if r.get("backdoor_success") is None else r["backdoor_success"],
              "" if r.get("precision") is None else r["precision"],
              "" if r.get("recall") is None else r["recall"],
              "" if r.get("wall_seconds") is None else r["wall_seconds"],
              str(RunDir(Path(CELLS_DIR) / f"{r['attack']}__{r['defense']}").report)]
             for r in rows]  # fmt: skip
    sections.append(Section("Cells", html_table(header, table)))
    write_page(out / REPORT_FILE, "fedrobust attack x defense matrix",
               html.escape(str(out)), sections)  # fmt: skip
