"""``fedrobust tune``: search a scenario's ``tune:`` space with Optuna.

Checks everything before the first trial (Optuna installed, the metric a validation
figure, every searched value valid, the data), then runs the trials
(:mod:`fedrobust.tune.study`) and writes what the study found (:mod:`fedrobust.tune.report`):
``trials.csv``, ``best.yaml``, ``report.md`` and the plots, all in ``--out``.
"""

from __future__ import annotations

import argparse
import sys

from fedrobust.extras import require


def cmd_tune(args: argparse.Namespace) -> int:
    """Run the study up to ``--trials`` trials; 0, or 1 when no trial completed."""
    from rich.console import Console
    from rich.table import Table

    from fedrobust.commands.preflight import preflight
    from fedrobust.tune import report
    from fedrobust.tune.space import build
    from fedrobust.tune.study import (
        counted_trials,
        open_study,
        prepare_search,
        run_trials,
        study_lock,
    )

    console = Console(highlight=False, soft_wrap=True)
    require("fedrobust tune", "optuna")
    search = prepare_search(args.scenario, args.out, args.metric, args.pruner)
    preflight(build(search.raw, {}))  # data problems stop here, exit 2, before any trial
    settings = f"sampler {search.sampler} (seed {search.seed}), pruner {search.pruner}"
    console.print(
        f"[bold]{search.name}[/bold]: searching {', '.join(search.space)} on "
        f"{search.metric} ({search.direction}), {args.trials} trials, {args.jobs} at a time, "
        f"{settings} -> {search.out}"
    )
    with study_lock(search.out):
        study = open_study(search)
        done = counted_trials(study)
        if done:
            console.print(f"resuming: {done} trials done, {max(args.trials - done, 0)} to run")
        run_trials(
            study, search, args.trials, jobs=args.jobs,
            say=lambda text: console.print(text, markup=False),
        )  # fmt: skip
        rows = report.trial_rows(study, search)
        report.write_trials_csv(rows, search)
        best = report.write_best(study, search)
        missing = report.write_plots(study, search.out, search.metric)
        path = report.write_report(study, search, rows, settings, missing)
    table = Table(title=f"{search.name}: {len(rows)} trials")
    for column in report.table_header(search, short=True):
        table.add_column(column)
    for row in rows:
        table.add_row(*report.table_cells(row, search))
    console.print(table)
    if best is None:
        print("no trial completed: no best.yaml", file=sys.stderr)
        return 1
    console.print(f"best: {best}  (fedrobust run {best})")
    console.print(f"report: {path}, {search.out / report.TRIALS_CSV}")
    return 0
