"""``fedrobust privacy-attack``: what a curious server or a model user learns from a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from fedrobust.commands.common import require_run_dir
from fedrobust.errors import FedrobustError


def cmd_privacy_attack(args: argparse.Namespace) -> int:
    """Run one privacy attack against a finished run; add it to its report."""
    from rich.console import Console
    from rich.table import Table

    from fedrobust.commands.common import load_model_for
    from fedrobust.privacy.canaries import scenario_federation
    from fedrobust.privacy_attacks.config import PrivacyAttacksConfig
    from fedrobust.privacy_attacks.run import attack_run, read_results
    from fedrobust.privacy_attacks.updates import recorded_updates, select_updates
    from fedrobust.report.html import write_report
    from fedrobust.rundir import RunDir

    run_dir: Path = args.run_dir
    require_run_dir(run_dir)
    inversion = args.attack == "inversion"
    if not inversion:
        for option in ("client", "round", "images"):
            if getattr(args, option) is not None:
                raise FedrobustError(f"--{option}", "applies to --attack inversion only")
    scenario, _, model = load_model_for(run_dir, None)
    cfg = scenario.evaluation.privacy_attacks or PrivacyAttacksConfig()
    updates = []
    if inversion:
        found = recorded_updates(RunDir(run_dir).privacy_attacks, scenario.resume_digest())
        updates = select_updates(found, client=args.client, rnd=args.round)
    fed = scenario_federation(scenario)
    attack_run(
        run_dir, scenario, fed, model, cfg,
        attacks=[args.attack], updates=updates, images=args.images, strict=True,
    )  # fmt: skip
    results = read_results(run_dir)
    console = Console(highlight=False)
    if inversion:
        table = Table(title=f"{scenario.name}: gradient inversion by the server")
        table.add_column("update", no_wrap=True)
        for column in ("examples", "PSNR mean (dB)", "PSNR max", "SSIM mean", "labels right"):
            table.add_column(column)
        for r in results["inversion"]:  # strict: every row was attacked
            who = f"client {r['clients'][0]}" if r["kind"] == "client" else "aggregate"
            table.add_row(
                f"round {r['round']}, {who}",
                str(r["num_examples"]),
                _fmt(r["psnr_mean"]),
                _fmt(r["psnr_max"]),
                _fmt(r["ssim_mean"]),
                f"{r['labels_correct']}/{r['images']}",
            )
    else:
        found = results["membership"]
        table = Table(
            title=f"{scenario.name}: membership inference "
            f"({found['members']} members vs {found['non_members']} non-members)"
        )
        for column in ("attack", "ROC AUC", "TPR at 0.1% FPR", "TPR at 1% FPR"):
            table.add_column(column)
        for name, a in found["attacks"].items():
            table.add_row(
                name, _fmt(a["auc"]), _fmt(a["tpr_at_0.1%_fpr"]), _fmt(a["tpr_at_1%_fpr"])
            )
    console.print(table)
    report = write_report(run_dir)
    console.print(f"results: {RunDir(run_dir).privacy_attack_results}\nreport: {report}")
    return 0


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"
