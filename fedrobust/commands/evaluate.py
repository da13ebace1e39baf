"""``fedrobust evaluate``: robust accuracy of a saved model under torchattacks attacks."""

from __future__ import annotations

import argparse

from fedrobust.commands.common import load_model_for
from fedrobust.commands.progress import progress_bar
from fedrobust.errors import FedrobustError


def attack_list(text: str) -> list[str]:
    """The ``--attacks`` names, each one torchattacks knows."""
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


def eps_list(text: str) -> list[float]:
    """The ``--eps`` budgets, each in (0, 1]."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise FedrobustError("--eps", f"not a list of numbers: {text!r}") from None
    if not values or not all(0 < v <= 1 for v in values):
        raise FedrobustError(
            "--eps", f"budgets must be in (0, 1] (inputs are [0, 1] images): {text!r}"
        )
    return values


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Tabulate clean and robust accuracy of a run's model (or a model file)."""
    from rich.console import Console
    from rich.table import Table

    from fedrobust.adversarial.evaluation import (
        attack_key,
        attack_subset,
        default_num_samples,
        robust_accuracy,
    )
    from fedrobust.train import evaluate

    attacks, budgets = attack_list(args.attacks), eps_list(args.eps)
    scenario, fed, model = load_model_for(args.target, args.scenario)
    count = default_num_samples(len(fed.y_test), args.num_samples)
    subset = attack_subset(len(fed.y_test), count, scenario.seed)
    n = len(subset)
    clean = evaluate(model, fed.x_test[subset], fed.y_test[subset], fed.spec.num_classes).accuracy
    console = Console(highlight=False)
    try:
        with progress_bar(console, len(attacks) * len(budgets), "attacks") as done:
            figures = robust_accuracy(
                model, fed.x_test, fed.y_test, attacks, budgets, steps=args.steps,
                norm=args.norm, num_samples=n, num_classes=fed.spec.num_classes,
                seed=scenario.seed, on_attack=done,
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
    console.print(table)
    return 0
