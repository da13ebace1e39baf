"""The ``fedrobust`` command line: run, repeat, validate, report, ...

Every input problem ends as ``error: <where>: <what>`` on stderr and exit code 2;
a run that starts but fails exits 1 and keeps the rounds it finished. The parser is
here; each sub-command's handler lives in :mod:`fedrobust.commands`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fedrobust import versions
from fedrobust.bundled import resolve_scenario
from fedrobust.commands.audit import cmd_audit
from fedrobust.commands.compare import cmd_compare
from fedrobust.commands.deploy import cmd_credentials, cmd_deploy, cmd_split
from fedrobust.commands.evaluate import cmd_evaluate
from fedrobust.commands.explain import cmd_explain
from fedrobust.commands.export import cmd_export
from fedrobust.commands.matrix import cmd_matrix
from fedrobust.commands.privacy_attack import cmd_privacy_attack
from fedrobust.commands.repeat import cmd_repeat
from fedrobust.commands.report import cmd_report, cmd_validate
from fedrobust.commands.run import cmd_run
from fedrobust.commands.scenarios import cmd_scenarios
from fedrobust.commands.tune import cmd_tune
from fedrobust.errors import FedrobustError

EXIT_INPUT = 2
SCENARIO_HELP = "scenario YAML file, or the name of a bundled one (fedrobust scenarios)"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port 1..65535, got {value}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**31), got {value}")
    return value


def version_line() -> str:
    """``fedrobust X (flwr Y, torch Z, ...)``: what ``--version`` prints."""
    found = versions()
    others = ", ".join(f"{name} {v}" for name, v in found.items() if name != "fedrobust")
    return f"fedrobust {found['fedrobust']} ({others})"


def build_parser() -> argparse.ArgumentParser:
    """The ``fedrobust`` parser: one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="fedrobust", description="Privacy-preserving and robust federated learning."
    )
    parser.add_argument(
        "--version", action="version", version=version_line(), help="print the versions and exit"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    scenarios = sub.add_parser(
        "scenarios", help="list the bundled scenarios (each runs by name: fedrobust run NAME)"
    )
    scenarios.add_argument("--paths", action="store_true", help="print each one's file")

    run = sub.add_parser("run", help="run a scenario in a Flower simulation")
    run.add_argument("scenario", type=resolve_scenario, help=SCENARIO_HELP)
    run.add_argument("--out", help="run directory (default: output.dir or runs/<name>)")
    run.add_argument("--rounds", type=_positive, help="override train.rounds")
    run.add_argument("--seed", type=_seed, help="override the scenario seed")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in the run directory from its last checkpoint",
    )

    deploy = sub.add_parser(
        "deploy",
        help="run a scenario on local SuperNodes behind a TLS SuperLink with node authentication",
    )
    deploy.add_argument("scenario", type=resolve_scenario, help=SCENARIO_HELP)
    deploy.add_argument("--out", help="run directory (default: output.dir or runs/<name>)")
    deploy.add_argument("--rounds", type=_positive, help="override train.rounds")
    deploy.add_argument("--seed", type=_seed, help="override the scenario seed")
    deploy.add_argument(
        "--dir", type=Path, help="credentials and logs (default: RUN_DIR/deploy; reused)"
    )
    deploy.add_argument(
        "--data-dir",
        type=Path,
        help="node i trains on DIR/client-<i>.npz (node_config data-path), see `split`",
    )
    creds = sub.add_parser(
        "credentials",
        help="CA, SuperLink certificate, SuperNode key pairs and a flwr connection for a "
        "TLS federation with node authentication",
    )
    creds.add_argument("--dir", type=Path, required=True, help="gets certs/, keys/, flwr/")
    creds.add_argument("--nodes", type=_positive, required=True, help="key pairs to create")
    creds.add_argument(
        "--host",
        action="append",
        required=True,
        help="a name or IP address SuperNodes dial (repeat; the first goes in the connection)",
    )
    creds.add_argument("--port", type=_port, default=9093, help="SuperLink port (default 9093)")
    split = sub.add_parser(
        "split", help="write each client's data of a scenario as DIR/client-<i>.npz for devices"
    )
    split.add_argument("scenario", type=resolve_scenario, help=SCENARIO_HELP)
    split.add_argument("--out", type=Path, required=True, help="directory for the npz files")

    export = sub.add_parser(
        "export", help="export a run's model for devices (int8 optional); size and accuracy"
    )
    export.add_argument("run_dir", type=Path, help="a finished run directory")
    export.add_argument("--format", choices=["torchscript", "onnx"], required=True)
    export.add_argument(
        "--quantize", choices=["int8"], help="also write a dynamically quantised copy"
    )
    export.add_argument("--out", type=Path, help="output directory (default: RUN_DIR/export)")

    validate = sub.add_parser("validate", help="check a scenario and print it resolved")
    validate.add_argument("scenario", type=resolve_scenario, help=SCENARIO_HELP)
    validate.add_argument(
        "--data", action="store_true", help="also load and split the data (slower)"
    )
    report = sub.add_parser("report", help="rebuild DIR/report.html from DIR/metrics.json")
    report.add_argument("run_dir", type=Path, help="a run directory")
    evaluate = sub.add_parser(
        "evaluate", help="robust accuracy of a saved model under torchattacks attacks"
    )
    evaluate.add_argument("target", type=Path, help="a run directory, or a model .pt file")
    evaluate.add_argument(
        "--scenario",
        type=resolve_scenario,
        help="the scenario of a model file (default: the run's)",
    )
    evaluate.add_argument("--attacks", default="pgd,fgsm", help="comma-separated attack names")
    evaluate.add_argument("--eps", default="0.1,0.2,0.3", help="comma-separated budgets in (0, 1]")
    evaluate.add_argument("--steps", type=_positive, default=20, help="iterations (default 20)")
    evaluate.add_argument("--norm", choices=["linf", "l2"], default="linf")
    evaluate.add_argument(
        "--num-samples",
        type=_positive,
        default=None,
        help="attack a seeded random subset of N test examples",
    )
    matrix = sub.add_parser(
        "matrix", help="run the attack x defense grid of a scenario and tabulate it"
    )
    matrix.add_argument(
        "scenario", type=resolve_scenario, help=SCENARIO_HELP + " (data, model, recipe)"
    )
    matrix.add_argument(
        "--attacks",
        required=True,
        help="comma-separated attack.kind values (a no-attack row is added)",
    )
    matrix.add_argument("--defenses", required=True, help="comma-separated defense.name values")
    matrix.add_argument("--out", help="output directory (default: runs/<name>_matrix)")
    matrix.add_argument("--rounds", type=_positive, help="override train.rounds in every cell")
    matrix.add_argument("--seed", type=_seed, help="override the scenario seed in every cell")
    matrix.add_argument(
        "--jobs", type=_positive, default=1, help="cells run at the same time (default 1)"
    )
    matrix.add_argument(
        "--seeds",
        type=_positive,
        default=1,
        help="runs per cell, seeds seed..seed+N-1; tables show mean ± 95%% CI (default 1)",
    )
    repeat = sub.add_parser(
        "repeat", help="run a scenario over N seeds; mean and 95%% CI of every final figure"
    )
    repeat.add_argument("scenario", type=resolve_scenario, help=SCENARIO_HELP)
    repeat.add_argument(
        "--seeds",
        type=_positive,
        required=True,
        help="number of seeds: the scenario's seed, seed+1, ..., seed+N-1",
    )
    repeat.add_argument("--out", help="output directory (default: runs/<name>-repeat)")
    repeat.add_argument(
        "--jobs", type=_positive, default=1, help="seeds run at the same time (default 1)"
    )
    repeat.add_argument("--rounds", type=_positive, help="override train.rounds in every run")
    audit = sub.add_parser(
        "audit", help="one-run canary audit of a finished run: a lower bound on epsilon"
    )
    audit.add_argument(
        "run_dir", type=Path, help="a run directory of a scenario with privacy.audit"
    )

    attack = sub.add_parser(
        "privacy-attack",
        help="attack a finished run's privacy: gradient inversion by the server, "
        "membership inference on the final model",
    )
    attack.add_argument("run_dir", type=Path, help="a run directory")
    attack.add_argument(
        "--attack",
        choices=["inversion", "membership"],
        required=True,
        help="inversion: reconstruct training inputs from the updates the server recorded "
        "(evaluation.privacy_attacks); membership: loss and LiRA attacks on model.pt",
    )
    attack.add_argument("--client", type=_non_negative, help="inversion: this client's updates")
    attack.add_argument("--round", type=_positive, help="inversion: this round's updates")
    attack.add_argument(
        "--images", type=_positive, help="inversion: inputs to reconstruct per update"
    )
    explain = sub.add_parser(
        "explain",
        help="attribution maps of a finished run's model (Captum): per-class maps, "
        "examples, the backdoor trigger's share; added to its report",
    )
    explain.add_argument("run_dir", type=Path, help="a run directory")
    explain.add_argument(
        "--method",
        help="integrated_gradients | saliency | gradient_shap | occlusion (default: the "
        "scenario's evaluation.explain.method, else integrated_gradients)",
    )
    explain.add_argument(
        "--samples", type=_positive, help="test examples to explain, stratified (default 100)"
    )
    compare = sub.add_parser(
        "compare",
        help="runs and repeat directories side by side: curves, final figures (mean ± 95%% "
        "CI over seeds), scenario differences",
    )
    compare.add_argument(
        "dirs", type=Path, nargs="+", metavar="DIR", help="run or repeat directories (2 or more)"
    )
    compare.add_argument("--out", help="output directory (default: runs/compare)")
    compare.add_argument(
        "--metric",
        default="accuracy",
        help="per-round figure to overlay: a numeric key of the rounds rows (default accuracy)",
    )
    tune = sub.add_parser(
        "tune",
        help="search the scenario's tune: space with Optuna (needs fedrobust[tune]); "
        "trials scored on validation figures, pruned per round; best.yaml and a report",
    )
    tune.add_argument(
        "scenario", type=resolve_scenario, help=SCENARIO_HELP + " with a tune: section"
    )
    tune.add_argument(
        "--trials", type=_positive, required=True,
        help="trials in the study in all (a resumed study adds up to this many)",
    )  # fmt: skip
    tune.add_argument(
        "--jobs", type=_positive, default=1, help="trials run at the same time (default 1)"
    )
    tune.add_argument(
        "--out", help="output directory; holds the study to resume (default runs/tune-<name>)"
    )
    tune.add_argument(
        "--metric",
        help="validation figure to score: val_accuracy, val_balanced_accuracy or val_loss "
        "(default tune.metric, else val_accuracy)",
    )
    tune.add_argument(
        "--pruner",
        choices=["median", "hyperband", "none"],
        help="stop bad trials early (default tune.pruner, else median)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command, and return its exit code (2: bad input)."""
    args = build_parser().parse_args(argv)
    handlers = {
        "run": cmd_run,
        "validate": cmd_validate,
        "report": cmd_report,
        "audit": cmd_audit,
        "privacy-attack": cmd_privacy_attack,
        "explain": cmd_explain,
        "evaluate": cmd_evaluate,
        "matrix": cmd_matrix,
        "repeat": cmd_repeat,
        "deploy": cmd_deploy,
        "split": cmd_split,
        "credentials": cmd_credentials,
        "export": cmd_export,
        "compare": cmd_compare,
        "tune": cmd_tune,
        "scenarios": cmd_scenarios,
    }
    try:
        return handlers[args.command](args)
    except FedrobustError as exc:
        print(f"error: {exc.where}: {exc.what}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
