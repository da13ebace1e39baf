"""Continual learning: average accuracy and forgetting per setting and method.

Federated rows: real Flower simulations with 5 non-IID clients (Dirichlet 1.0), the
MLP, 3 rounds per task, for split digits / split mnist-5k (class- and task-incremental,
five two-class tasks) and permuted digits (domain-incremental, three tasks), with
methods none / ewc / lwf / replay / ewc+replay. Centralised rows: one learner (our local
loop) on split mnist-5k class-incremental, the anchor of van de Ven & Tolias 2019
(split MNIST, class-incremental: EWC about 20 %, replay about 90 %).

Run: ``.venv/bin/python benchmarks/continual.py [--datasets digits,mnist-5k]
[--methods none,ewc,lwf,replay,ewc+replay] [--skip-federated]`` (about 25 minutes per
dataset on 2 cores).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from fedrobust.continual import EWC, Replay, ReservoirBuffer, fisher_diagonal, snapshot
from fedrobust.continual.federated import task_accuracies, task_data
from fedrobust.continual.metrics import ContinualMetrics
from fedrobust.data import build_federation
from fedrobust.models.build import build_model
from fedrobust.scenario import parse_scenario
from fedrobust.simulation import run_simulation
from fedrobust.train import local_train

PAIRS = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]


def scenario(dataset: str, setting: str, method: str) -> dict[str, Any]:
    continual: dict[str, Any] = {
        "setting": setting, "rounds_per_task": 3, "method": method,
        "ewc": {"lambda": 100.0}, "replay": {"buffer_size": 200},
    }  # fmt: skip
    if setting == "domain_incremental":
        continual["domain"] = {"kind": "permute", "num_tasks": 3}
    else:
        continual["tasks"] = PAIRS
    tasks = 3 if setting == "domain_incremental" else 5
    return {
        "name": "bench_continual",
        "seed": 0,
        "data": {"dataset": dataset,
                 "partition": {"kind": "dirichlet", "num_clients": 5, "alpha": 1.0}},
        "model": {"name": "mlp", "hidden": [128], "normalize": {"mean": [0.3], "std": [0.37]}},
        "train": {"rounds": 3 * tasks, "local_epochs": 2, "batch_size": 16,
                  "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}},
        "continual": continual,
    }  # fmt: skip


def federated(doc: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_text(yaml.safe_dump(doc))
        result = run_simulation(path, parse_scenario(doc), Path(tmp) / "run")
    return result["final"]["continual"]


def centralised(dataset: str, method: str, epochs: int = 3) -> dict[str, Any]:
    """One learner through split ``dataset`` class-incrementally (our local loop)."""
    doc = scenario(dataset, "class_incremental", method)
    doc["data"]["partition"] = {"kind": "iid", "num_clients": 1}
    sc = parse_scenario(doc)
    cl = sc.continual
    assert cl is not None
    fed = build_federation(sc.data, sc.seed)
    data, k = fed.clients[0], fed.spec.num_classes
    torch.manual_seed(0)
    model = build_model(sc.model, fed.spec)
    train = sc.train.model_copy(update={"local_epochs": epochs})
    buffer = ReservoirBuffer(cl.replay.buffer_size, 0)
    ewc: EWC | None = None
    metrics = ContinualMetrics()
    for task in range(cl.num_tasks()):
        x, y = task_data(cl, sc.seed, data.x_train, data.y_train, task)
        plugins: list[Any] = []
        if "replay" in cl.methods() and len(buffer):
            plugins.append(Replay(buffer, cl.replay.ratio, task))
        if ewc is not None:
            plugins.append(ewc)
        local_train(model, x, y, train=train, num_classes=k, seed=task, plugins=tuple(plugins))
        if "replay" in cl.methods():
            buffer.add(torch.as_tensor(x), torch.as_tensor(y))
        if "ewc" in cl.methods():
            fisher = fisher_diagonal(model, x, y, samples=cl.ewc.fisher_samples)
            if ewc is None:
                ewc = EWC(fisher, snapshot(model), cl.ewc.lambda_)
            else:
                ewc.consolidate(fisher, snapshot(model), cl.ewc.online)
        metrics.record(task, task_accuracies(cl, sc.seed, model, fed.x_test, fed.y_test, k))
    return metrics.to_dict()


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", default="digits,mnist-5k")
    parser.add_argument("--methods", default="none,ewc,lwf,replay,ewc+replay")
    parser.add_argument("--skip-federated", action="store_true")
    args = parser.parse_args()
    methods = args.methods.split(",")
    rows = []
    for method in ("none", "ewc", "replay"):
        result = centralised("mnist-5k", method)
        rows.append(("mnist-5k", "class (centralised)", method, result))
        print(rows[-1][:3], fmt(result["average_accuracy"]), flush=True)
    if not args.skip_federated:
        for dataset in args.datasets.split(","):
            settings = ["class_incremental", "task_incremental"]
            if dataset == "digits":
                settings.append("domain_incremental")
            for setting in settings:
                for method in methods:
                    if "replay" in method and setting == "task_incremental":
                        continue  # refused: replay under a task head
                    result = federated(copy.deepcopy(scenario(dataset, setting, method)))
                    rows.append((dataset, setting.split("_")[0], method, result))
                    print(rows[-1][:3], fmt(result["average_accuracy"]), flush=True)
    print("\n| data | setting | method | average accuracy | forgetting | BWT |")
    print("|---|---|---|---:|---:|---:|")
    for dataset, setting, method, r in rows:
        print(f"| {dataset} | {setting} | {method} | {fmt(r['average_accuracy'])} | "
              f"{fmt(r['forgetting'])} | {fmt(r['bwt'])} |")  # fmt: skip


if __name__ == "__main__":
    main()
