"""``fedrobust report`` and ``validate``: rebuild a run's report; check a scenario."""

from __future__ import annotations

import argparse
import sys

from fedrobust.errors import FedrobustError
from fedrobust.rundir import RunDir


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild ``RUN_DIR/report.html`` from ``RUN_DIR/metrics.json``."""
    from fedrobust.report.html import write_report

    metrics = RunDir(args.run_dir).metrics
    if not metrics.is_file():
        raise FedrobustError(str(metrics), "no such file: not a run directory")
    try:
        path = write_report(args.run_dir)
    except (ValueError, KeyError, TypeError) as exc:
        raise FedrobustError(str(metrics), f"malformed metrics ({exc})") from None
    print(path)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Print the scenario resolved (and, with ``--data``, the sizes of its split)."""
    from fedrobust.scenario import load_scenario, scenario_to_yaml

    scenario = load_scenario(args.scenario)
    if args.data:
        from fedrobust.data import build_federation

        fed = build_federation(scenario.data, scenario.seed)
        sizes = [len(c.y_train) for c in fed.clients]
        print(
            f"# data: {len(fed.clients)} clients, {sum(sizes)} training samples "
            f"(min {min(sizes)}, max {max(sizes)}), {len(fed.y_test)} test samples"
        )
    print(scenario_to_yaml(scenario), end="")
    print(f"# {args.scenario}: valid", file=sys.stderr)
    return 0
