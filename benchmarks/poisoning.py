"""Poisoning: the attack x defence matrix on digits with 20 % malicious clients.

Runs ``fedrobust matrix`` (real Flower simulations, one per cell) on a digits
federation of ``--clients`` IID clients (default 15, so Bulyan can tolerate the 3
attackers: it needs n >= 4f + 3), the GroupNorm CNN, ``--rounds`` rounds, every attack
against every defence plus a no-attack row, then prints the matrix of final accuracy
and, per attack, the gap of each defence to the clean FedAvg run and whether some
defence stays within 3 points. Known failures are printed, not hidden: coordinate-wise
rules (median, trimmed mean) under ALIE and min-max.

Run: ``.venv/bin/python benchmarks/poisoning.py [--rounds 30] [--out runs/bench_poisoning]``
(about 90 minutes on 2 cores: 81 simulations of ~1 minute each, mostly start-up).
A rerun skips cells that already finished.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

ATTACKS = ["label_flip", "sign_flip", "gaussian", "scaling", "backdoor", "alie", "ipm", "minmax"]
DEFENSES = ["fedavg", "krum", "multikrum", "bulyan", "median", "trimmed_mean", "norm_bound",
            "centered_clip", "fltrust"]  # fmt: skip


def base_scenario(clients: int, rounds: int) -> dict[str, object]:
    return {
        "name": "bench_poisoning",
        "seed": 0,
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": clients}},
        "model": {"name": "cnn", "normalize": {"mean": [0.3], "std": [0.37]}},
        "train": {
            "rounds": rounds,
            "local_epochs": 3,
            "batch_size": 16,
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        },
        "attack": {"kind": "sign_flip", "fraction": 0.2},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--clients", type=int, default=15)
    parser.add_argument("--out", default="runs/bench_poisoning")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--defenses", default=",".join(DEFENSES))
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    scenario = out / "base.yaml"
    scenario.write_text(yaml.safe_dump(base_scenario(args.clients, args.rounds), sort_keys=False))
    subprocess.run(
        [sys.executable, "-m", "fedrobust.cli", "matrix", str(scenario), "--attacks",
         args.attacks, "--defenses", args.defenses, "--out", str(out)],
        check=False,
    )  # fmt: skip
    rows = json.loads((out / "matrix.json").read_text())
    by_cell = {(r["attack"], r["defense"]): r for r in rows}
    clean = by_cell[("none", "fedavg")]["accuracy"]
    defenses = list(dict.fromkeys(r["defense"] for r in rows))
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    print(f"\nclean FedAvg accuracy: {clean:.3f}; gap to it in points (negative = worse)")
    print("| attack | " + " | ".join(defenses) + " | best | within 3 points |")
    print("|---|" + "---:|" * (len(defenses) + 2))
    for attack in attacks:
        gaps = {}
        for d in defenses:
            row = by_cell.get((attack, d), {})
            if "accuracy" in row:
                gaps[d] = 100 * (row["accuracy"] - clean)
        cells = [f"{gaps[d]:+.1f}" if d in gaps else "failed" for d in defenses]
        best = max(gaps, key=gaps.__getitem__) if gaps else "-"
        ok = "yes" if gaps and gaps[best] >= -3 else "NO"
        print(f"| {attack} | " + " | ".join(cells) + f" | {best} | {ok} |")
    backdoor = [r for r in rows if r.get("backdoor_success") is not None]
    if backdoor:
        print("\nbackdoor success: " + ", ".join(
            f"{r['defense']} {r['backdoor_success']:.3f}" for r in backdoor))  # fmt: skip


if __name__ == "__main__":
    main()
