"""The attack x defence matrix: one run per cell on the scenario's data and model.

``fedrobust matrix SCENARIO --attacks a,b --defenses x,y`` runs every cell (plus a
no-attack row) through the same simulation path as ``fedrobust run``, one run
directory per cell under ``OUT/cells/``, and writes ``OUT/matrix.md``, ``matrix.csv``,
``matrix.json``, heatmaps and ``report.html``. The tables are rewritten after each cell,
so an interrupted grid keeps what it finished; a rerun skips finished cells whose
scenario is unchanged.

``--seeds N`` runs each cell N times (seeds ``seed``, ..., ``seed + N - 1``, in
``cells/<attack>__<defense>/seed-<s>/``); the tables then show the mean and the half-width
of its 95 % Student-t confidence interval, and ``matrix.json`` keeps every seed's row.
The no-attack row runs every defence with the number of attackers it assumes in the
attack rows (``defense.num_malicious``), so a rule's cost on clean data is measured.
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
from fedrobust.extras import require
from fedrobust.report.html import Section, embed_image, html_table, write_page
from fedrobust.robust.config import (
    ATTACK_FIELDS,
    AttackConfig,
    defense_options,
    known_defenses,
)
from fedrobust.rundir import REPORT_FILE, RunDir
from fedrobust.scenario import Scenario, parse_scenario

NO_ATTACK = "none"
CELLS_DIR = "cells"  # OUT/cells/<attack>__<defense>/ is each cell's run directory
CELL_FILE = "cell.yaml"  # the cell's scenario, in its run directory
MATRIX_MD = "matrix.md"
MATRIX_CSV = "matrix.csv"
MATRIX_JSON = "matrix.json"
#: The figures of a cell (:func:`cell_row`); over seeds each gets a mean and a CI.
FIGURES = ("accuracy", "loss", "backdoor_success", "precision", "recall", "wall_seconds")


@dataclass(frozen=True)
class Cell:
    """One run of the grid: an (attack, defence) pair, at one seed under ``--seeds``.

    ``seed`` is ``None`` for a single-seed grid (the cell runs in ``cells/<name>/``);
    under ``--seeds N`` each grid position has N cells, one per seed, each in
    ``cells/<name>/seed-<s>/``.
    """

    attack: str
    defense: str
    scenario: Scenario
    seed: int | None = None

    @property
    def name(self) -> str:
        return f"{self.attack}__{self.defense}"

    @property
    def directory(self) -> Path:
        """The cell's run directory, relative to the matrix's output directory."""
        cell_dir = Path(CELLS_DIR) / self.name
        return cell_dir if self.seed is None else cell_dir / f"seed-{self.seed}"


def build_cells(
    base: Scenario, attacks: list[str], defenses: list[str], seeds: int = 1
) -> list[Cell]:
    """Every (attack, defence) scenario, validated before anything runs.

    Each cell keeps the base scenario and its ``attack``/``defense`` parameters where
    they apply to the cell's kind and name (``fraction``, ``scale``, ``num_malicious``,
    ...). The no-attack row comes first, and every defence in it assumes the same number
    of attackers (``defense.num_malicious``) as in the attack rows, so its clean-data
    cost (Multi-Krum and Bulyan discard updates even without attackers) is measured.

    Parameters
    ----------
    base : Scenario
        Data, model and recipe of every cell; its ``attack`` and ``defense`` sections
        give the parameters.
    attacks, defenses : list[str]
        ``attack.kind`` values (the no-attack row is added) and ``defense.name`` values.
    seeds : int
        Runs per grid position: 1 (cells without a ``seed``), or N cells per position
        with the seeds ``base.seed``, ..., ``base.seed + N - 1``, in grid order.

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
    if base.seed + seeds - 1 >= 2**31:
        raise FedrobustError("--seeds", f"seeds {base.seed}..{base.seed + seeds - 1} run "
                             "past the largest seed 2**31 - 1; use fewer")  # fmt: skip
    attack_rows = [a for a in attacks if a != NO_ATTACK]
    assumed = assumed_attackers(base, attack_rows)
    grid = []
    for attack in [NO_ATTACK, *attack_rows]:
        for defense in defenses:
            grid.append(Cell(attack, defense, cell_scenario(base, attack, defense, assumed)))
    if seeds == 1:
        return grid
    cells = []
    for cell in grid:
        for seed in range(base.seed, base.seed + seeds):
            scenario = parse_scenario({**cell.scenario.model_dump(mode="json"), "seed": seed})
            cells.append(Cell(cell.attack, cell.defense, scenario, seed))
    return cells


def assumed_attackers(base: Scenario, attacks: list[str]) -> int:
    """The attackers the defences assume in the attack rows (and so in the no-attack row).

    ``defense.num_malicious`` when set; else the attack's count (``attack.count``, or
    ``attack.fraction`` of the clients), which every attack row shares; the base
    scenario's own figure when no attack row is asked for.
    """
    if base.defense.num_malicious is not None or not attacks:
        return base.defense_num_malicious()
    counts = base.attack.model_dump(mode="json", exclude_unset=True)
    doc = {"kind": attacks[0], **{k: v for k, v in counts.items() if k in ("fraction", "count")}}
    return AttackConfig.model_validate(doc).num_malicious(base.data.partition.num_clients)


def cell_scenario(base: Scenario, attack: str, defense: str, assumed: int) -> Scenario:
    """The scenario of one (attack, defence) cell; the no-attack row's defence assumes
    ``assumed`` attackers where it reads ``num_malicious``.

    Raises
    ------
    FedrobustError
        Naming the field and the cell.
    """
    doc = json.loads(json.dumps(base.model_dump(mode="json")))
    attack_set = base.attack.model_dump(mode="json", exclude_unset=True)
    defense_set = base.defense.model_dump(mode="json", exclude_unset=True)
    doc["name"] = f"{base.name}__{attack}__{defense}"
    doc["attack"] = {"kind": attack}
    if attack != NO_ATTACK:
        keep = ATTACK_FIELDS[attack] | {"fraction", "count", "start_round"}
        doc["attack"].update({k: v for k, v in attack_set.items() if k in keep})
    keep = defense_options(defense)
    doc["defense"] = {"name": defense, **{k: v for k, v in defense_set.items() if k in keep}}
    if attack == NO_ATTACK and "num_malicious" in keep:
        doc["defense"]["num_malicious"] = assumed
    # The wrapper fields go with every rule that takes them: bucketing (refused without a
    # rule and for FLTrust, by compat.py: those cells run without it) and reproducible.
    wrapper = {k: v for k, v in defense_set.items() if k in ("bucketing", "reproducible")}
    try:
        try:
            return parse_scenario({**doc, "defense": {**doc["defense"], **wrapper}})
        except FedrobustError as exc:
            if not wrapper or exc.where not in ("defense.bucketing", "defense.reproducible"):
                raise
            return parse_scenario(doc)
    except FedrobustError as exc:
        raise FedrobustError(
            exc.where, f"{exc.what} (cell attack {attack} x defense {defense})"
        ) from None


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

    A failed cell gets an ``error`` row and the grid goes on. Cells with a ``seed``
    (``--seeds``) are summarised per grid position (:func:`table_rows`); ``on_cell`` gets
    each run's own row, with its ``seed``.
    """
    done: dict[int, dict[str, Any]] = {}
    lock = threading.Lock()

    def one(index: int) -> None:
        cell = cells[index]
        cell_dir = out / cell.directory
        doc = finished(cell, cell_dir)
        try:
            row = cell_row(cell, doc if doc is not None else run_cell(cell, cell_dir))
        except Exception as exc:  # noqa: BLE001 - one failed cell must not lose the grid
            row = {"attack": cell.attack, "defense": cell.defense, "error": str(exc)}
        if cell.seed is not None:
            row = {"seed": cell.seed, **row}
        with lock:
            done[index] = row
            write_matrix(table_rows(cells, done), out)
            if on_cell is not None:
                on_cell(row)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(one, range(len(cells))))
    return table_rows(cells, done)


def table_rows(cells: list[Cell], done: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The matrix rows of the finished runs ``done`` (``{cell index: row}``), grid order.

    Without seeds, the runs' rows themselves; with seeds, one :func:`seed_row` per grid
    position that has at least one finished run.
    """
    if all(cell.seed is None for cell in cells):
        return [done[i] for i in sorted(done)]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for index, cell in enumerate(cells):
        group = groups.setdefault((cell.attack, cell.defense), [])
        if index in done:
            group.append(done[index])
    return [seed_row(attack, defense, rows)
            for (attack, defense), rows in groups.items() if rows]  # fmt: skip


def seed_row(attack: str, defense: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One grid position over its seeds: mean and 95 % CI half-width of every figure.

    Parameters
    ----------
    attack, defense : str
        The grid position.
    runs : list[dict]
        The :func:`cell_row` of each finished seed, with its ``seed`` (``error`` when
        the run failed).

    Returns
    -------
    dict
        ``attack``, ``defense``, ``seeds`` (finished), ``completed`` (how many
        completed), for each figure of :data:`FIGURES` its mean and ``<figure>_ci95``
        (the CI half-width; ``None`` with one seed or without the figure), ``per_seed``
        (the runs' rows), ``failed_seeds`` (``{seed: error}``) when a seed failed, and
        ``error`` when every seed failed.
    """
    from fedrobust.report.summary import summarize

    ok = [r for r in runs if "error" not in r]
    failed = {str(r["seed"]): r["error"] for r in runs if "error" in r}
    row: dict[str, Any] = {"attack": attack, "defense": defense,
                           "seeds": [r["seed"] for r in runs], "completed": len(ok)}  # fmt: skip
    if not ok:
        row["error"] = "; ".join(f"seed {s}: {e}" for s, e in failed.items())
    else:
        stats = summarize({r["seed"]: {k: r.get(k) for k in FIGURES} for r in ok})["figures"]
        for key in FIGURES:
            row[key] = stats[key]["mean"] if key in stats else None
            row[f"{key}_ci95"] = stats[key]["half_width"] if key in stats else None
    if failed:
        row["failed_seeds"] = failed
    row["per_seed"] = runs
    return row


def _value(rows: list[dict[str, Any]], key: str) -> dict[tuple[str, str], float | None]:
    return {(r["attack"], r["defense"]): r.get(key) for r in rows}


def cell_text(row: dict[str, Any]) -> str:
    """A matrix.md cell: accuracy (backdoor success in brackets); ``mean ± CI`` over seeds,
    with the completed/run count when a seed failed."""
    if "error" in row:
        return "failed"
    text = _pm(row["accuracy"], row.get("accuracy_ci95"), 3)
    if row.get("backdoor_success") is not None:
        text += f" (bd {_pm(row['backdoor_success'], row.get('backdoor_success_ci95'), 2)})"
    if row.get("failed_seeds"):
        text += f" [{row['completed']}/{len(row['seeds'])} seeds]"
    return text


def _pm(mean: float, half: float | None, digits: int) -> str:
    return f"{mean:.{digits}f}" if half is None else f"{mean:.{digits}f} ± {half:.{digits}f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    """Final accuracy (backdoor success in brackets) per attack row and defence column;
    over seeds, ``mean ± half-width`` of the 95 % confidence interval."""
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    defenses = list(dict.fromkeys(r["defense"] for r in rows))
    by_cell = {(r["attack"], r["defense"]): r for r in rows}
    lines = ["| attack \\ defense | " + " | ".join(defenses) + " |",
             "|---|" + "---:|" * len(defenses)]  # fmt: skip
    for attack in attacks:
        cells = []
        for defense in defenses:
            row = by_cell.get((attack, defense))
            cells.append("" if row is None else cell_text(row))
        lines.append(f"| {attack} | " + " | ".join(cells) + " |")
    seeds = max((len(r["seeds"]) for r in rows if "seeds" in r), default=0)
    if seeds:
        lines += ["", f"Mean ± half-width of the 95 % confidence interval (Student t) over "
                  f"up to {seeds} seeds per cell; per-seed values in matrix.json."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _csv_value(row: dict[str, Any], key: str) -> Any:
    if key == "seeds":
        return " ".join(str(s) for s in row.get("seeds", []))
    if key == "error" and row.get("failed_seeds") and "error" not in row:
        return "; ".join(f"seed {s}: {e}" for s, e in row["failed_seeds"].items())
    return row.get(key)


def write_matrix(rows: list[dict[str, Any]], out: Path) -> None:
    """matrix.md, matrix.csv, matrix.json, heatmaps and report.html in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    seeded = any("seeds" in r for r in rows)
    (out / MATRIX_MD).write_text(markdown(rows), encoding="utf-8")
    (out / MATRIX_JSON).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    fields = ["attack", "defense"]
    if seeded:
        fields += ["seeds", "completed"]
    for key in FIGURES:
        fields += [key, f"{key}_ci95"] if seeded else [key]
    fields.append("error")
    with (out / MATRIX_CSV).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row, k) for k in fields})
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    defenses = list(dict.fromkeys(r["defense"] for r in rows))
    title = "final test accuracy" + (" (mean over seeds)" if seeded else "")
    require("fedrobust matrix", "matplotlib")
    from fedrobust.report.plots import plot_matrix

    sections = [Section("Final accuracy", embed_image(plot_matrix(
        _value(rows, "accuracy"), attacks, defenses, title,
        out / "matrix_accuracy.png")))]  # fmt: skip
    if any(r.get("backdoor_success") is not None for r in rows):
        png = plot_matrix(_value(rows, "backdoor_success"), attacks, defenses,
                          "backdoor success (lower is better)",
                          out / "matrix_backdoor.png", cmap="RdYlGn_r")  # fmt: skip
        sections.append(Section("Backdoor success", embed_image(png)))
    header = ["attack", "defense", "accuracy", "backdoor success", "precision", "recall",
              "seconds", "run"]  # fmt: skip
    table = []
    for r in rows:
        cell_dir = Path(CELLS_DIR) / f"{r['attack']}__{r['defense']}"
        table.append([
            r["attack"], r["defense"],
            r.get("error", "") if r.get("accuracy") is None else _html_figure(r, "accuracy"),
            _html_figure(r, "backdoor_success"), _html_figure(r, "precision"),
            _html_figure(r, "recall"), _html_figure(r, "wall_seconds"),
            str(cell_dir) + "/" if seeded else str(RunDir(cell_dir).report),
        ])  # fmt: skip
    sections.append(Section("Cells", html_table(header, table)))
    write_page(out / REPORT_FILE, "fedrobust attack x defense matrix",
               html.escape(str(out)), sections)  # fmt: skip


def _html_figure(row: dict[str, Any], key: str) -> Any:
    value = row.get(key)
    if value is None:
        return ""
    half = row.get(f"{key}_ci95")
    return value if half is None else f"{value:.4g} ± {half:.2g}"
