"""Differential privacy: what DP-SGD costs in time, and the accuracy it leaves at a given epsilon.

Three measurements, each side by side in one run:

1. Local epoch time, DP-SGD vs non-private, for each ``grad_sample_mode`` (Opacus's
   and ``fast``) on the CNN and the MLP (mnist-5k shapes, 2,000 examples, batch 64;
   median of 3 epochs). The goal is at most 1.15x.
2. Centralised test accuracy at epsilon 1, 3 and 8 beside the non-private figure, from
   ``benchmarks/scenarios/privacy/central_*.yaml``: one DP-SGD learner on the whole
   training set (our local loop). For every seed and epsilon the recipe is chosen from
   the file's ``grid`` by accuracy on the validation split carved from the training data;
   the test split is scored once, on the chosen model.
3. Federated test accuracy, from ``benchmarks/scenarios/privacy/fed_*.yaml`` (a real
   Flower simulation per seed through ``fedrobust repeat``, with
   ``privacy.dp.target_epsilon``). Every seed's epsilon is recomputed here from its
   ``metrics.json`` ledger with Opacus's accountant and must equal the one it reports.

Tables 2 and 3 show mean ± 95 % CI (Student t) over ``--seeds`` seeds.

Run: ``.venv/bin/python benchmarks/privacy.py [--skip-time] [--skip-central]
[--skip-federated] [--seeds 3] [--jobs 2] [--out runs/bench_privacy]``.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from compare import repeat, table  # benchmarks/compare.py (scripts run as python benchmarks/X.py)

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
from fedrobust.report.stats import format_ci, mean_ci
from fedrobust.scenario import ModelConfig, TrainConfig, parse_scenario
from fedrobust.train import evaluate, local_train

SCENARIOS = Path(__file__).parent / "scenarios" / "privacy"


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
        for mode in ("hooks", "functorch", "ew", "ghost", "fast"):
            private = epoch_seconds(cfg, mode)
            rows.append((name, mode, f"{plain:.3f}", f"{private:.3f}", f"{private / plain:.2f}x"))
    print("Local epoch time, DP-SGD vs non-private (2,000 examples, batch 64)")
    print_table(("model", "grad_sample_mode", "plain s", "DP s", "ratio"), rows)


def train_once(
    scenario: dict[str, Any], setting: dict[str, Any], seed: int, eps: float | None
) -> tuple[float, float, float | None]:
    """Train the centralised learner with one recipe; (validation acc, test acc, epsilon)."""
    spec = copy.deepcopy(scenario)
    spec["seed"] = seed
    spec["train"]["batch_size"] = setting["batch_size"]
    spec["train"]["optimizer"]["lr"] = setting["lr"]
    sc = parse_scenario(spec)
    fed = build_federation(sc.data, seed)
    data, k = fed.clients[0], fed.spec.num_classes
    n, batch, epochs = len(data.y_train), sc.train.batch_size, sc.train.local_epochs
    torch.manual_seed(seed)
    model = build_model(sc.model, fed.spec)
    dp = None
    if eps is not None:
        rate, steps = sample_rate(n, batch), epochs * steps_per_epoch(n, batch, True)
        sigma = calibrate_noise(eps, setting["delta"], rate, steps, "rdp")
        dp = DPSGDRecipe(sigma, setting["max_grad_norm"], delta=setting["delta"])
    result = local_train(model, data.x_train, data.y_train, train=sc.train, num_classes=k,
                         seed=seed, dp=dp)  # fmt: skip
    spent = None if result.privacy is None else epsilon([result.privacy], setting["delta"], "rdp")
    val = evaluate(model, data.x_val, data.y_val, k).accuracy
    test = evaluate(model, fed.x_test, fed.y_test, k).accuracy
    return val, test, spent


def central_table(path: Path, seeds: int) -> None:
    """Tune on validation per seed and epsilon, score the chosen model on test once."""
    doc = yaml.safe_load(path.read_text())
    scenario, grid = doc["scenario"], doc["grid"]
    settings = [
        dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())
    ]
    rows = []
    for eps in (None, *doc["epsilons"]):
        tests, spent_all, chosen = [], [], []
        for seed in range(scenario.get("seed", 0), scenario.get("seed", 0) + seeds):
            best: tuple[float, float, float | None, dict[str, Any]] | None = None
            for setting in settings:
                full = {**setting, "delta": doc["delta"], "max_grad_norm": doc["max_grad_norm"]}
                val, test, spent = train_once(scenario, full, seed, eps)
                if best is None or val > best[0]:
                    best = (val, test, spent, setting)
            assert best is not None
            tests.append(best[1])
            chosen.append(best[3])
            if best[2] is not None:
                spent_all.append(best[2])
        mean, half = mean_ci(tests)
        picks = "; ".join(f"b{c['batch_size']} lr{c['lr']:g}" for c in chosen)
        spent = "-" if not spent_all else f"{max(spent_all):.3f}"
        row = ("none" if eps is None else f"{eps:g}", spent, format_ci(mean, half),
               ", ".join(f"{t:.3f}" for t in tests), picks)  # fmt: skip
        rows.append(row)
        print(" | ".join(row), flush=True)
    print(f"\nCentralised ({path.name}): test accuracy of the validation-chosen recipe")
    print_table(("target eps", "max reported eps", "test acc mean ± 95% CI", "per seed",
                 "chosen (per seed)"), rows)  # fmt: skip


def federated_table(paths: list[Path], seeds: int, jobs: int, out: Path) -> None:
    """Each file over seeds through ``fedrobust repeat``; epsilons checked against the ledger."""
    summaries = []
    for path in paths:
        run_dir = out / path.stem
        delta = parse_scenario(yaml.safe_load(path.read_text())).privacy.dp.delta
        summaries.append(repeat(path, seeds, jobs, run_dir))
        for seed_dir in sorted(run_dir.glob("seed-*")):
            final = json.loads((seed_dir / "metrics.json").read_text())["final"]
            if "privacy_ledger" not in final:
                continue
            recomputed = max(
                epsilon([LedgerEntry.from_dict(e) for e in entries], delta, "rdp")
                for entries in final["privacy_ledger"].values()
            )
            if abs(recomputed - final["epsilon"]) > 1e-9 * recomputed:
                sys.exit(f"{seed_dir}: reported epsilon {final['epsilon']} != ledger {recomputed}")
        print(f"{path.stem}: done", file=sys.stderr, flush=True)
    print(
        "\nFederated: test accuracy and the epsilon each run reports (recomputed from its ledger)"
    )
    print(table([p.stem for p in paths], summaries, ["accuracy", "epsilon"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-time", action="store_true")
    parser.add_argument("--skip-central", action="store_true")
    parser.add_argument("--skip-federated", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_privacy"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    if not args.skip_time:
        time_table()
    if not args.skip_central:
        for path in sorted(SCENARIOS.glob("central_*.yaml")):
            central_table(path, args.seeds)
    if not args.skip_federated:
        federated_table(sorted(SCENARIOS.glob("fed_*.yaml")), args.seeds, args.jobs, args.out)


if __name__ == "__main__":
    main()
