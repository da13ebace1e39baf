"""The console of ``run`` and ``deploy``: a headline, one line per round, a summary."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedrobust.rundir import RunDir


def round_printer(console: Any, total: int) -> Callable[[dict[str, Any]], None]:
    """The per-round console line of ``run`` and ``deploy``."""

    def on_round(row: dict[str, Any]) -> None:
        dropped = sum(row.get("dropped", {}).values())
        note = f"  dropped {dropped}" if dropped else ""
        if row.get("rejoined"):
            note += f"  rejoined {row['rejoined']}"
        if "epsilon" in row:
            note = f"  epsilon {row['epsilon']:.3f}{note}"
        secure = row.get("secure_aggregation")
        if secure:
            lost = sum(secure["dropouts"].values())
            note += f"  secagg {secure['contributors']}/{secure['sampled']} clients"
            note += f", {lost} dropped" if lost else ""
            if secure["failure"]:
                note += f"  NO AGGREGATE ({secure['failure']})"
        console.print(
            f"round {row['round']:>{len(str(total))}}/{total}  accuracy {row['accuracy']:.4f}  "
            f"loss {row['loss']:.4f}  {row['seconds']:.1f}s{note}"
        )

    return on_round


def print_summary(console: Any, scenario: Any, doc: dict[str, Any], run_dir: Path) -> None:
    """The summary table of a finished run."""
    from rich.table import Table

    final = doc["final"]
    table = Table(title=f"{scenario.name}: summary", show_header=False)
    table.add_row("final accuracy", f"{final['accuracy']:.4f}")
    table.add_row("final loss", f"{final['loss']:.4f}")
    if "model_round" in final:  # the figures above are this model's (model.pt)
        how = "chosen on validation data" if "best_round" in final else "the last round"
        table.add_row("model kept", f"round {final['model_round']} ({how})")
    table.add_row("rounds", str(final["rounds_completed"]))
    table.add_row("dropped replies", str(sum(sum(r["dropped"].values()) for r in doc["rounds"])))
    table.add_row("wall time", f"{final['wall_seconds']:.1f} s")
    if "epsilon" in final:
        table.add_row(
            "privacy",
            f"epsilon {final['epsilon']:.3f} at delta {final['delta']:g} "
            f"({final['dp_mode']}-level DP, {final['accountant']} accountant)"
            + ("" if final.get("privacy_valid", True) else "; NOT PRIVATE (reproducible noise)"),
        )
    if scenario.attack.kind != "none" or scenario.defense.name != "fedavg":
        text = f"attack {scenario.attack.kind}, defense {scenario.defense.name}"
        if "backdoor_success" in final:
            text += f", backdoor success {final['backdoor_success']:.3f}"
        table.add_row("poisoning", text)
    if "stopped_early" in final:
        table.add_row(
            "early stopping", f"stopped {final['stopped_early']}, best round {final['best_round']}"
        )
    table.add_row("results", str(run_dir))
    table.add_row("report", str(RunDir(run_dir).report))
    console.print(table)


def headline(console: Any, scenario: Any, fed: Any, run_dir: Path, where: str) -> None:
    """The line that says what is about to run, where, and where its results go."""
    console.print(
        f"[bold]{scenario.name}[/bold]: {scenario.data.dataset}, "
        f"{len(fed.clients)} clients ({scenario.data.partition.kind}), "
        f"model {scenario.model.name}, strategy {scenario.strategy.name}, "
        f"{scenario.train.rounds} rounds, {where} -> {run_dir}"
    )


def follow(
    console: Any,
    scenario: Any,
    run_dir: Path,
    launch: Callable[[Callable[[dict[str, Any]], None]], dict[str, Any]],
) -> int:
    """Run ``launch(on_round)``, printing rounds as they land (with a progress bar on a
    terminal), then the summary.

    Exit code 0, or 1 when the run started but did not complete.
    """
    from fedrobust.commands.progress import progress_bar
    from fedrobust.launch import RunFailed

    total = scenario.train.rounds
    printer = round_printer(console, total)
    with progress_bar(console, total, "rounds") as done:

        def on_round(row: dict[str, Any]) -> None:
            printer(row)
            done(int(row["round"]))

        try:
            doc = launch(on_round)
        except RunFailed as exc:
            print(f"run failed: {exc}", file=sys.stderr)
            return 1
    print_summary(console, scenario, doc, run_dir)
    return 0
