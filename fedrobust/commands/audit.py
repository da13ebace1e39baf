"""``fedrobust audit``: a one-run canary audit of a finished run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fedrobust.commands.common import load_model_for, require_run_dir
from fedrobust.errors import FedrobustError
from fedrobust.rundir import RunDir


def cmd_audit(args: argparse.Namespace) -> int:
    """Audit a run's canaries: a lower bound on epsilon, against the epsilon it claims."""
    from rich.console import Console
    from rich.table import Table

    from fedrobust.privacy.canaries import audit_model
    from fedrobust.report.metrics import read_metrics

    run_dir: Path = args.run_dir
    require_run_dir(run_dir)
    scenario, _, model = load_model_for(run_dir, None)
    if scenario.privacy.audit is None:
        raise FedrobustError(
            "privacy.audit", "the run has no canaries: add privacy.audit to the scenario and rerun"
        )
    doc = read_metrics(run_dir)
    claimed = (doc.get("final") or {}).get("epsilon")
    result = audit_model(scenario, model, claimed)
    RunDir(run_dir).audit.write_text(json.dumps(result, indent=2))
    table = Table(title=f"{scenario.name}: one-run canary audit", show_header=False)
    table.add_row("canaries (each included w.p. 1/2)", str(result["num_canaries"]))
    table.add_row("guesses / correct", f"{result['num_guesses']} / {result['num_correct']}")
    table.add_row(
        f"epsilon lower bound ({result['confidence']:.0%} confidence)",
        f"{result['epsilon_lower_bound']:.3f}",
    )
    table.add_row("epsilon the run claims", "none (no DP)" if claimed is None else f"{claimed:.3f}")
    table.add_row("consistent", "yes" if result["consistent"] else "NO: the claim is refuted")
    Console(highlight=False).print(table)
    return 0
