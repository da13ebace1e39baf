"""``fedrobust compare``: runs and repeats side by side (curves, final figures, scenario
differences) in one page; see :mod:`fedrobust.report.compare`."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUT = "runs/compare"


def cmd_compare(args: argparse.Namespace) -> int:
    """Write ``OUT/compare.html``, ``compare.png`` and ``compare.md`` and print the table
    of final figures."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from fedrobust.report.compare import final_table, load_comparison, write_comparison

    comparison = load_comparison(args.dirs, args.metric)
    out = Path(args.out or DEFAULT_OUT).expanduser().resolve()
    files = write_comparison(comparison, out)
    header, rows = final_table(comparison)
    table = Table(title="final figures")
    for index, column in enumerate(header):
        table.add_column(column, justify="left" if index < 2 else "right")
    for row in rows:
        table.add_row(*[escape(cell) for cell in row])
    console = Console(highlight=False, soft_wrap=True)
    console.print(table)
    differing = len(comparison.differing)
    console.print(f"scenario differences: {differing} field{'' if differing == 1 else 's'}",
                  markup=False)  # fmt: skip
    console.print(", ".join(str(path) for path in files), markup=False)
    return 0
