"""Continual learning: average accuracy and forgetting per setting and method, over seeds.

Federated rows are scenario files, one per arm, grouped by protocol and measured side by
side with ``benchmarks/compare.py`` (real Flower simulations). ``--federated GROUPS``
runs the groups of :data:`GROUPS` one after the other and prints each table::

    python benchmarks/continual.py --federated all --seeds 3 --out runs/bench_continual

(split digits class-, domain- and task-incremental with 5 Dirichlet(1.0) clients; the
buffer methods, the head methods and Fisher aggregation on the issue's protocol; split
mnist-5k with the CNN and its centralised references). Without ``--federated`` this
script runs the older centralised rows: one learner
(our local loop) through the task sequence of
``benchmarks/scenarios/continual/central_mnist5k.yaml`` (split mnist-5k,
class-incremental), ``train.local_epochs`` epochs per task, with each method of
``--methods`` in turn and the seeds ``seed .. seed + N - 1``, and prints each figure's mean
± 95 % CI. EWC's Fisher and anchor are taken at the end of each task, as the federated
clients' ``anchor: local``. The anchor is van de Ven & Tolias 2019 (split MNIST,
class-incremental: EWC about 20 %, replay about 90 %).

Run: ``.venv/bin/python benchmarks/continual.py [--seeds 3] [--methods none,ewc,replay]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from fedrobust.continual import EWC, Replay, ReservoirBuffer, fisher_diagonal, snapshot
from fedrobust.continual.federated import task_accuracies, task_data
from fedrobust.continual.metrics import ContinualMetrics
from fedrobust.data import build_federation
from fedrobust.models.build import build_model
from fedrobust.report.stats import format_ci, mean_ci
from fedrobust.scenario import parse_scenario
from fedrobust.train import local_train

SCENARIO = Path(__file__).parent / "scenarios" / "continual" / "central_mnist5k.yaml"
FIGURES = ("average_accuracy", "forgetting", "bwt")
#: Federated groups: name -> the arms' files under ``benchmarks/scenarios`` (first: baseline).
GROUPS = {
    "digits-class": "continual/class_*.yaml",
    "digits-domain": "continual/domain_*.yaml",
    "digits-task": "continual/task_*.yaml",
    "buffer": "continual_sota/*.yaml",
    "mnist5k": "continual_mnist5k/*.yaml",
    "head": "continual_head/*.yaml",
    "ewc-aggregate": "continual_ewc/*.yaml",
    "ewc-aggregate-task": "continual_ewc_task/*.yaml",
}


def federated(groups: list[str], seeds: int, out: Path) -> None:
    """Each group's arms through ``benchmarks/compare.py``, its table printed as it ends."""
    root = Path(__file__).parent
    figures = "continual.average_accuracy,continual.forgetting,continual.bwt"
    for group in groups:
        arms = sorted((root / "scenarios").glob(GROUPS[group]))
        print(f"\n### {group}\n", flush=True)
        subprocess.run(
            [sys.executable, str(root / "compare.py"), *map(str, arms), "--figures", figures,
             "--seeds", str(seeds), "--jobs", "1", "--out", str(out / group)],
            check=True,
        )  # fmt: skip


def centralised(doc: dict[str, Any], method: str, seed: int) -> dict[str, Any]:
    """One learner through the scenario's task sequence with ``method``; its summary."""
    doc = {**doc, "seed": seed, "continual": {**doc["continual"], "method": method}}
    sc = parse_scenario(doc)
    cl = sc.continual
    assert cl is not None
    fed = build_federation(sc.data, seed)
    data, k = fed.clients[0], fed.spec.num_classes
    torch.manual_seed(seed)
    model = build_model(sc.model, fed.spec)
    buffer = ReservoirBuffer(cl.replay.buffer_size, seed)
    ewc: EWC | None = None
    metrics = ContinualMetrics()
    for task in range(cl.num_tasks()):
        x, y = task_data(cl, seed, data.x_train, data.y_train, task)
        plugins: list[Any] = []
        if "replay" in cl.methods() and len(buffer):
            plugins.append(Replay(buffer, cl.replay.ratio, seed + task))
        if ewc is not None:
            plugins.append(ewc)
        local_train(model, x, y, train=sc.train, num_classes=k, seed=seed * 100 + task,
                    plugins=tuple(plugins))  # fmt: skip
        if "replay" in cl.methods():
            buffer.add(torch.as_tensor(x), torch.as_tensor(y))
        if "ewc" in cl.methods():
            fisher = fisher_diagonal(model, x, y, kind=cl.ewc.fisher,
                                     samples=cl.ewc.fisher_samples, seed=seed)  # fmt: skip
            if ewc is None:
                ewc = EWC(fisher, snapshot(model), cl.ewc.lambda_)
            else:
                ewc.consolidate(fisher, snapshot(model), cl.ewc.online)
        metrics.record(task, task_accuracies(cl, seed, model, fed.x_test, fed.y_test, k))
    return metrics.to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", default="none,ewc,replay")
    parser.add_argument("--scenario", type=Path, default=SCENARIO)
    parser.add_argument("--federated", default="", help=f"all or some of {', '.join(GROUPS)}")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_continual"))
    args = parser.parse_args()
    if args.federated:
        names = list(GROUPS) if args.federated == "all" else args.federated.split(",")
        unknown = sorted(set(names) - set(GROUPS))
        if unknown:
            parser.error(f"--federated: unknown group(s) {', '.join(unknown)}")
        federated(names, args.seeds, args.out)
        return
    doc = yaml.safe_load(args.scenario.read_text())
    first = int(doc.get("seed", 0))
    print("| method | " + " | ".join(FIGURES) + " |")
    print("|---|" + "---:|" * len(FIGURES))
    for method in args.methods.split(","):
        runs = [centralised(doc, method, s) for s in range(first, first + args.seeds)]
        cells = []
        for key in FIGURES:
            values = [float(r[key]) for r in runs]
            per_seed = ", ".join(f"{v:.3f}" for v in values)
            cells.append(f"{format_ci(*mean_ci(values))} ({per_seed})")
        print(f"| {method} | " + " | ".join(cells) + " |", flush=True)
    print(
        f"\n{args.scenario.name}, mean ± 95 % CI (per seed) over {args.seeds} seeds; command:"
        f" python benchmarks/continual.py --seeds {args.seeds} --methods {args.methods}"
    )


if __name__ == "__main__":
    main()
