"""The ``fedrobust`` command line: run, validate, report.

Every input problem ends as ``error: <where>: <what>`` on stderr and exit code 2;
a run that starts but fails exits 1 and keeps the rounds it finished.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fedrobust.errors import FedrobustError

EXIT_INPUT = 2


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedrobust", description="Privacy-preserving and robust federated learning."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a scenario in a Flower simulation")
    run.add_argument("scenario", type=Path, help="scenario YAML file")
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
    deploy.add_argument("scenario", type=Path, help="scenario YAML file")
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
    split.add_argument("scenario", type=Path, help="scenario YAML file")
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
    validate.add_argument("scenario", type=Path, help="scenario YAML file")
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
        "--scenario", type=Path, help="the scenario of a model file (default: the run's)"
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
    matrix.add_argument("scenario", type=Path, help="scenario YAML file (data, model, recipe)")
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
    audit = sub.add_parser(
        "audit", help="one-run canary audit of a finished run: a lower bound on epsilon"
    )
    audit.add_argument(
        "run_dir", type=Path, help="a run directory of a scenario with privacy.audit"
    )
    return parser


def cmd_report(args: argparse.Namespace) -> int:
    from fedrobust.report.html import write_report
    from fedrobust.report.metrics import METRICS_FILE

    metrics = args.run_dir / METRICS_FILE
    if not metrics.is_file():
        raise FedrobustError(str(metrics), "no such file: not a run directory")
    try:
        path = write_report(args.run_dir)
    except (ValueError, KeyError, TypeError) as exc:
        raise FedrobustError(str(metrics), f"malformed metrics ({exc})") from None
    print(path)
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if getattr(args, "rounds", None) is not None:
        overrides["train.rounds"] = args.rounds
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    return overrides


def cmd_validate(args: argparse.Namespace) -> int:
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


def _preflight(scenario: Any) -> tuple[Any, str | None]:
    """Load the data and try what can fail on it, before any process starts.

    Returns the federation and the privacy plan to print (None without DP).
    """
    from fedrobust.models.build import build_model
    from fedrobust.privacy.accounting import check_privacy
    from fedrobust.privacy.canaries import scenario_federation
    from fedrobust.robust.poisoning import check_classes
    from fedrobust.simulation import check_app_dir

    check_app_dir()
    fed = scenario_federation(scenario)  # data errors surface here, exit 2
    try:
        model = build_model(scenario.model, fed.spec)  # so does a model unfit for this data
    except ValueError as exc:
        raise FedrobustError("model.name", str(exc)) from None
    if scenario.adversarial.evaluation is not None:  # an attack unfit for this data fails here
        from fedrobust.adversarial.evaluation import robust_accuracy

        cfg = scenario.adversarial.evaluation
        try:
            robust_accuracy(
                model, fed.x_test, fed.y_test, cfg.attacks, cfg.eps[:1], steps=1,
                norm=cfg.norm, num_samples=2, num_classes=fed.spec.num_classes,
            )  # fmt: skip
        except ValueError as exc:
            raise FedrobustError("adversarial.evaluation.attacks", str(exc)) from None
    try:  # class ids an attack names must exist in this data
        check_classes(scenario.attack, fed.spec.num_classes)
    except ValueError as exc:
        field, what = str(exc).split(": ", 1)
        raise FedrobustError(field, what) from None
    if scenario.secagg_enabled():  # the modulus must hold the sum for this model's size
        from fedrobust.secagg import resolve_params

        cfg = scenario.privacy.secure_aggregation
        assert cfg is not None
        size = sum(p.numel() for p in model.state_dict().values() if p.is_floating_point())
        try:
            resolve_params(cfg.params(1.0), scenario.sampled_per_round(), size)
        except ValueError as exc:
            field, _, what = str(exc).partition(": ")
            raise FedrobustError(f"privacy.secure_aggregation.{field}", what) from None
    plan = check_privacy(scenario, {i: len(c.y_train) for i, c in enumerate(fed.clients)})
    return fed, plan


def _round_printer(console: Any, total: int) -> Any:
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


def _print_summary(console: Any, scenario: Any, doc: dict[str, Any], run_dir: Path) -> None:
    from rich.table import Table

    final = doc["final"]
    best = max(doc["rounds"], key=lambda r: r["accuracy"])
    table = Table(title=f"{scenario.name}: summary", show_header=False)
    table.add_row("final accuracy", f"{final['accuracy']:.4f}")
    table.add_row("final loss", f"{final['loss']:.4f}")
    table.add_row("best accuracy", f"{best['accuracy']:.4f} (round {best['round']})")
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
    table.add_row("report", str(run_dir / "report.html"))
    console.print(table)


def _headline(console: Any, scenario: Any, fed: Any, run_dir: Path, where: str) -> None:
    console.print(
        f"[bold]{scenario.name}[/bold]: {scenario.data.dataset}, "
        f"{len(fed.clients)} clients ({scenario.data.partition.kind}), "
        f"model {scenario.model.name}, strategy {scenario.strategy.name}, "
        f"{scenario.train.rounds} rounds, {where} -> {run_dir}"
    )


def _follow(console: Any, scenario: Any, run_dir: Path, launch: Any) -> int:
    """Run ``launch(on_round)``, printing rounds as they land, then the summary.

    Exit code 0, or 1 when the run started but did not complete.
    """
    from fedrobust.launch import RunFailed

    try:
        doc = launch(_round_printer(console, scenario.train.rounds))
    except RunFailed as exc:
        print(f"run failed: {exc}", file=sys.stderr)
        return 1
    _print_summary(console, scenario, doc, run_dir)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fedrobust.launch import resolve_run_dir
    from fedrobust.scenario import load_scenario
    from fedrobust.simulation import check_resumable, run_simulation

    console = Console(highlight=False, soft_wrap=True)
    scenario = load_scenario(args.scenario, _overrides(args))
    fed, privacy_plan = _preflight(scenario)
    run_dir = resolve_run_dir(scenario, args.out)
    if args.resume:
        done = check_resumable(run_dir, scenario)
        console.print(f"resuming {run_dir} after round {done}")
    _headline(console, scenario, fed, run_dir, "simulation")
    if privacy_plan:
        console.print(privacy_plan)
    return _follow(
        console, scenario, run_dir,
        lambda on_round: run_simulation(
            args.scenario, scenario, run_dir, rounds=args.rounds, seed=args.seed,
            resume=args.resume, on_round=on_round,
        ),
    )  # fmt: skip


def cmd_deploy(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fedrobust.data.device import device_file, load_device_data
    from fedrobust.deploy.local import run_deployment
    from fedrobust.launch import resolve_run_dir
    from fedrobust.scenario import load_scenario

    console = Console(highlight=False, soft_wrap=True)
    scenario = load_scenario(args.scenario, _overrides(args))
    fed, privacy_plan = _preflight(scenario)
    run_dir = resolve_run_dir(scenario, args.out)
    n = scenario.data.partition.num_clients
    if args.data_dir is not None:  # every device file must fit before any node starts
        if scenario.privacy.audit is not None:
            raise FedrobustError(
                "--data-dir", "privacy.audit plants canaries in simulated partitions only"
            )
        for i in range(n):
            path = device_file(args.data_dir, i)
            load_device_data(path, fed.spec, scenario.data.val_fraction, scenario.seed + i)
    _headline(console, scenario, fed, run_dir, f"{n} SuperNodes (TLS, node authentication)")
    if privacy_plan:
        console.print(privacy_plan)
    return _follow(
        console, scenario, run_dir,
        lambda on_round: run_deployment(
            args.scenario, scenario, run_dir, directory=args.dir, data_dir=args.data_dir,
            rounds=args.rounds, seed=args.seed, on_round=on_round,
        ),
    )  # fmt: skip


def cmd_credentials(args: argparse.Namespace) -> int:
    from fedrobust.deploy.local import CONNECTION, create_credentials

    hosts = [h.strip() for h in args.host if h.strip()]
    if not hosts:
        raise FedrobustError("--host", "give at least one host name or IP address")
    creds = create_credentials(args.dir, args.nodes, hosts, args.port)
    print(f"CA certificate      {creds.certs.ca_cert}   (copy to every device)")
    print(f"SuperLink cert/key  {creds.certs.cert}, {creds.certs.key}   ({', '.join(hosts)})")
    for keys in creds.nodes:
        print(f"node key pair       {keys.private} (+ .pub)   (private key: its device only)")
    print(f"flwr connection     '{CONNECTION}' -> {creds.address} in {creds.flwr_home}/config.toml")
    print(f"                    export FLWR_HOME={creds.flwr_home}")
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from fedrobust.data import build_federation
    from fedrobust.data.device import write_device_files
    from fedrobust.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    fed = build_federation(scenario.data, scenario.seed)
    for index, path in enumerate(write_device_files(fed, args.out)):
        client = fed.clients[index]
        print(f"{path}  train {len(client.y_train)}  val {len(client.y_val)}")
    return 0


def _names(text: str, option: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise FedrobustError(option, "give at least one name")
    return names


def cmd_matrix(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fedrobust.launch import RunFailed
    from fedrobust.matrix import build_cells, run_matrix
    from fedrobust.scenario import load_scenario, scenario_to_yaml
    from fedrobust.simulation import check_app_dir, run_simulation

    console = Console(highlight=False, soft_wrap=True)
    base = load_scenario(args.scenario, _overrides(args))
    check_app_dir()
    cells = build_cells(
        base, _names(args.attacks, "--attacks"), _names(args.defenses, "--defenses")
    )
    out = Path(args.out or f"runs/{base.name}_matrix").expanduser().resolve()
    console.print(f"[bold]{base.name}[/bold]: {len(cells)} runs -> {out}")

    def run_cell(cell: Any, cell_dir: Path) -> dict[str, Any]:
        cell_dir.mkdir(parents=True, exist_ok=True)
        path = cell_dir / "cell.yaml"
        path.write_text(scenario_to_yaml(cell.scenario), encoding="utf-8")
        try:
            return run_simulation(path, cell.scenario, cell_dir)
        except RunFailed as exc:
            raise RuntimeError(str(exc)) from None

    def on_cell(row: dict[str, Any]) -> None:
        if "error" in row:
            console.print(f"{row['attack']:>12} x {row['defense']:<14} failed: {row['error']}")
            return
        note = ""
        if row.get("backdoor_success") is not None:
            note = f"  backdoor success {row['backdoor_success']:.3f}"
        console.print(
            f"{row['attack']:>12} x {row['defense']:<14} accuracy {row['accuracy']:.4f}{note}"
        )

    rows = run_matrix(cells, out, run_cell, on_cell, jobs=args.jobs)
    console.print((out / "matrix.md").read_text(encoding="utf-8"))
    console.print(f"tables: {out}/matrix.md, matrix.csv; report: {out}/report.html")
    return 1 if any("error" in r for r in rows) else 0


def _attack_list(text: str) -> list[str]:
    from fedrobust.attacks import check_attack_name

    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise FedrobustError("--attacks", "give at least one attack name")
    for name in names:
        try:
            check_attack_name(name)
        except ValueError as exc:
            raise FedrobustError("--attacks", str(exc)) from None
    return names


def _eps_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise FedrobustError("--eps", f"not a list of numbers: {text!r}") from None
    if not values or not all(0 < v <= 1 for v in values):
        raise FedrobustError(
            "--eps", f"budgets must be in (0, 1] (inputs are [0, 1] images): {text!r}"
        )
    return values


def _load_model_for(target: Path, scenario_path: Path | None) -> tuple[Any, Any, Any]:
    """(scenario, federation, model) of a run directory or a model file."""
    import torch

    from fedrobust.data import build_federation
    from fedrobust.models.build import build_model
    from fedrobust.report.metrics import read_metrics
    from fedrobust.scenario import load_scenario, parse_scenario

    if target.is_dir():
        if not (target / "metrics.json").is_file():
            raise FedrobustError(str(target), "not a run directory (no metrics.json)")
        model_path = target / "model.pt"
        scenario = (
            load_scenario(scenario_path)
            if scenario_path
            else parse_scenario(read_metrics(target)["scenario"])
        )
    elif target.is_file():
        if scenario_path is None:
            raise FedrobustError("--scenario", f"needed to evaluate a model file ({target})")
        model_path, scenario = target, load_scenario(scenario_path)
    else:
        raise FedrobustError(str(target), "no such run directory or model file")
    if not model_path.is_file():
        raise FedrobustError(str(model_path), "no such file: the run did not finish")
    fed = build_federation(scenario.data, scenario.seed)
    model = build_model(scenario.model, fed.spec)
    try:
        model.load_state_dict(torch.load(model_path, weights_only=True))
    except Exception as exc:  # noqa: BLE001 - any unreadable or mismatched file is a bad input
        raise FedrobustError(str(model_path), f"not a model of this scenario ({exc})") from None
    return scenario, fed, model


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from fedrobust.adversarial.evaluation import attack_key, attack_subset, robust_accuracy
    from fedrobust.train import evaluate

    attacks, budgets = _attack_list(args.attacks), _eps_list(args.eps)
    scenario, fed, model = _load_model_for(args.target, args.scenario)
    subset = attack_subset(len(fed.y_test), args.num_samples, scenario.seed)
    n = len(subset)
    clean = evaluate(model, fed.x_test[subset], fed.y_test[subset], fed.spec.num_classes).accuracy
    try:
        figures = robust_accuracy(
            model, fed.x_test, fed.y_test, attacks, budgets, steps=args.steps, norm=args.norm,
            num_samples=n, num_classes=fed.spec.num_classes, seed=scenario.seed,
        )  # fmt: skip
    except ValueError as exc:
        raise FedrobustError("--attacks", str(exc)) from None
    table = Table(title=f"{scenario.name}: robust accuracy on {n} test examples ({args.norm})")
    table.add_column("attack")
    for budget in budgets:
        table.add_column(f"eps {budget!r}", justify="right")
    table.add_row("clean", *[f"{clean:.4f}"] * len(budgets))
    for name in attacks:
        table.add_row(name, *[f"{figures[attack_key(name, b)]:.4f}" for b in budgets])
    Console(highlight=False).print(table)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from fedrobust.deploy.export import export_model, export_table

    run_dir: Path = args.run_dir
    if not (run_dir / "metrics.json").is_file():
        raise FedrobustError(str(run_dir / "metrics.json"), "no such file: not a run directory")
    if args.format == "onnx":
        import importlib.util

        missing = [
            m for m in ("onnx", "onnxscript", "onnxruntime") if not importlib.util.find_spec(m)
        ]
        if missing:
            raise FedrobustError("--format", f"onnx needs {', '.join(missing)}: pip install them")
    scenario, fed, model = _load_model_for(run_dir, None)
    out = args.out or run_dir / "export"
    rows = export_model(model, fed.x_test, fed.y_test, out, args.format, args.quantize)
    doc = {"run": str(run_dir.resolve()), "test_examples": len(fed.y_test)}
    doc["files"] = [row.to_dict() for row in rows]
    (out / "export.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    (out / "export.md").write_text(export_table(rows), encoding="utf-8")
    print(f"{scenario.name}: {args.format} export, measured on {len(fed.y_test)} test examples")
    print(export_table(rows), end="")
    print(f"files and table: {out}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from fedrobust.privacy.canaries import audit_model
    from fedrobust.report.metrics import read_metrics

    run_dir: Path = args.run_dir
    if not (run_dir / "metrics.json").is_file():
        raise FedrobustError(str(run_dir / "metrics.json"), "no such file: not a run directory")
    scenario, _, model = _load_model_for(run_dir, None)
    if scenario.privacy.audit is None:
        raise FedrobustError(
            "privacy.audit", "the run has no canaries: add privacy.audit to the scenario and rerun"
        )
    doc = read_metrics(run_dir)
    claimed = (doc.get("final") or {}).get("epsilon")
    result = audit_model(scenario, model, claimed)
    (run_dir / "audit.json").write_text(json.dumps(result, indent=2))
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "run": cmd_run,
        "validate": cmd_validate,
        "report": cmd_report,
        "audit": cmd_audit,
        "evaluate": cmd_evaluate,
        "matrix": cmd_matrix,
        "deploy": cmd_deploy,
        "split": cmd_split,
        "credentials": cmd_credentials,
        "export": cmd_export,
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
