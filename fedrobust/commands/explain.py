"""``fedrobust explain``: which input features a finished run's model looks at."""

from __future__ import annotations

import argparse
from pathlib import Path

from fedrobust.commands.common import require_run_dir
from fedrobust.errors import FedrobustError


def cmd_explain(args: argparse.Namespace) -> int:
    """Attribution maps of a run's model by one method; add them to its report."""
    from rich.console import Console
    from rich.table import Table

    from fedrobust.commands.common import load_model_for
    from fedrobust.explain.attributions import METHODS, require_captum
    from fedrobust.explain.config import ExplainConfig
    from fedrobust.explain.run import explain_run, read_results
    from fedrobust.report.html import write_report
    from fedrobust.rundir import RunDir

    run_dir: Path = args.run_dir
    require_run_dir(run_dir)
    if args.method is not None:
        try:
            METHODS.get(args.method)
        except FedrobustError as exc:
            raise FedrobustError("--method", exc.what) from None
    require_captum()
    scenario, fed, model = load_model_for(run_dir, None)
    cfg = scenario.evaluation.explain or ExplainConfig()
    cfg = cfg.for_method(args.method or cfg.method, args.samples)
    explain_run(run_dir, scenario, fed, model, cfg)
    found = read_results(run_dir)[cfg.method]
    console = Console(highlight=False)
    table = Table(title=f"{scenario.name}: {cfg.method} on {found['samples']} test examples")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("accuracy on the examples", f"{found['accuracy']:.3f}")
    complete = found.get("completeness")
    if complete:
        table.add_row("sum of attributions (mean)", f"{complete['sum_of_attributions_mean']:.4f}")
        table.add_row("f(x) - f(baseline) (mean)", f"{complete['output_difference_mean']:.4f}")
        table.add_row("|convergence delta| (mean)", f"{complete['mean_abs_delta']:.2e}")
        table.add_row("relative completeness error", f"{complete['relative_error']:.2e}")
    trigger = found.get("trigger")
    if trigger:
        table.add_row("trigger's share of the input", f"{trigger['trigger_area']:.3f}")
        for key, label in (("fraction_triggered", "triggered inputs"), ("fraction_clean", "clean")):
            table.add_row(f"|attribution| in trigger, {label}", _fmt(trigger[key]))
        table.add_row("backdoor success on them", _fmt(trigger["backdoor_success"]))
    console.print(table)
    report = write_report(run_dir)
    console.print(f"results: {RunDir(run_dir).explain_results}\nreport: {report}")
    return 0


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"
