"""``fedrobust run``: a scenario in a Flower simulation."""

from __future__ import annotations

import argparse

from fedrobust.commands.common import overrides
from fedrobust.commands.follow import follow, headline
from fedrobust.commands.preflight import preflight


def cmd_run(args: argparse.Namespace) -> int:
    """Run (or ``--resume``) a scenario in a simulation; 0, or 1 when it did not complete."""
    from rich.console import Console

    from fedrobust.launch import resolve_run_dir
    from fedrobust.scenario import load_scenario
    from fedrobust.simulation import check_resumable, run_simulation

    console = Console(highlight=False, soft_wrap=True)
    scenario = load_scenario(args.scenario, overrides(args))
    run_dir = resolve_run_dir(scenario, args.out)
    fed, privacy_plan = preflight(scenario, run_dir=run_dir)
    if args.resume:
        done = check_resumable(run_dir, scenario)
        console.print(f"resuming {run_dir} after round {done}")
    headline(console, scenario, fed, run_dir, "simulation")
    if scenario.tune is not None:
        console.print("the tune: section is ignored here; `fedrobust tune` searches it")
    if privacy_plan:
        console.print(privacy_plan)
    return follow(
        console, scenario, run_dir,
        lambda on_round: run_simulation(
            args.scenario, scenario, run_dir, rounds=args.rounds, seed=args.seed,
            resume=args.resume, on_round=on_round,
        ),
    )  # fmt: skip
