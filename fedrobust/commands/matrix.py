"""``fedrobust matrix``: the attack x defense grid of a scenario, one simulation per cell."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fedrobust.commands.common import names, overrides
from fedrobust.commands.progress import progress_bar


def cmd_matrix(args: argparse.Namespace) -> int:
    """Run every cell and tabulate it; 1 when a cell failed."""
    from rich.console import Console

    from fedrobust.extras import require
    from fedrobust.launch import RunFailed
    from fedrobust.matrix import CELL_FILE, MATRIX_MD, build_cells, run_matrix
    from fedrobust.rundir import REPORT_FILE
    from fedrobust.scenario import load_scenario, scenario_to_yaml
    from fedrobust.simulation import check_simulation, run_simulation

    console = Console(highlight=False, soft_wrap=True)
    base = load_scenario(args.scenario, overrides(args))
    check_simulation()
    require("fedrobust matrix", "matplotlib")
    seeds = args.seeds
    cells = build_cells(
        base, names(args.attacks, "--attacks"), names(args.defenses, "--defenses"), seeds
    )
    out = Path(args.out or f"runs/{base.name}_matrix").expanduser().resolve()
    per_cell = f" ({seeds} seeds per cell)" if seeds > 1 else ""
    console.print(f"[bold]{base.name}[/bold]: {len(cells)} runs{per_cell} -> {out}")

    def run_cell(cell: Any, cell_dir: Path) -> dict[str, Any]:
        cell_dir.mkdir(parents=True, exist_ok=True)
        path = cell_dir / CELL_FILE
        path.write_text(scenario_to_yaml(cell.scenario), encoding="utf-8")
        try:
            return run_simulation(path, cell.scenario, cell_dir)
        except RunFailed as exc:
            raise RuntimeError(str(exc)) from None

    def on_cell(row: dict[str, Any]) -> None:
        where = f"{row['attack']:>12} x {row['defense']:<14}"
        if "seed" in row:
            where += f" seed {row['seed']}"
        if "error" in row:
            console.print(f"{where} failed: {row['error']}", markup=False)
            return
        note = ""
        if row.get("backdoor_success") is not None:
            note = f"  backdoor success {row['backdoor_success']:.3f}"
        console.print(f"{where} accuracy {row['accuracy']:.4f}{note}")

    with progress_bar(console, len(cells), "runs") as done:
        finished = 0

        def on_run(row: dict[str, Any]) -> None:
            nonlocal finished
            finished += 1
            on_cell(row)
            done(finished)

        rows = run_matrix(cells, out, run_cell, on_run, jobs=args.jobs)
    console.print((out / MATRIX_MD).read_text(encoding="utf-8"), markup=False)
    console.print(f"tables: {out}/matrix.md, matrix.csv, matrix.json; report: {out}/{REPORT_FILE}")
    return 1 if any("error" in r or r.get("failed_seeds") for r in rows) else 0
