"""Poisoning: the attack x defence matrix with 20 % malicious clients, over seeds.

Runs ``fedrobust matrix SCENARIO --seeds N`` (real Flower simulations, one per cell and
seed; the default base scenario ``benchmarks/scenarios/poisoning.yaml``: digits, 15 IID
clients so that Bulyan tolerates the 3 attackers, n >= 4f + 3; the GroupNorm CNN;
``--scenario benchmarks/scenarios/poisoning_noniid.yaml``: 10 Dirichlet(0.3) clients,
``poisoning_noniid_bucketing.yaml``: the same with ``defense.bucketing: 2`` for every rule
that takes it, ``poisoning_noniid_mnist5k.yaml``: mnist-5k), every attack of
``--attacks`` against every defence of ``--defenses`` plus a no-attack row in which every
defence assumes the same f, then prints, per attack, each defence's final accuracy
(mean ± 95 % CI) and whether it is measurably below the clean FedAvg run: ``below`` when
the intervals do not overlap, ``-`` (no measurable difference) otherwise.

Run: ``.venv/bin/python benchmarks/poisoning.py [--scenario FILE] [--seeds 3] [--jobs 4]
[--attacks sign_flip,...] [--defenses fedavg,...] [--out runs/bench_poisoning]``
(the default grid: 4 rows x 9 defences x 3 seeds, about 50 minutes on 2 cores, mostly
simulation start-up). A rerun skips the cells and seeds that finished.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from fedrobust.report.stats import overlap

SCENARIO = Path(__file__).parent / "scenarios" / "poisoning.yaml"
ATTACKS = ["sign_flip", "backdoor", "alie"]
DEFENSES = ["fedavg", "krum", "multikrum", "bulyan", "median", "trimmed_mean", "norm_bound",
            "centered_clip", "fltrust"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=SCENARIO)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_poisoning"))
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--defenses", default=",".join(DEFENSES))
    args = parser.parse_args()
    out = args.out.resolve()
    command = [sys.executable, "-m", "fedrobust.cli", "matrix", str(args.scenario), "--attacks",
               args.attacks, "--defenses", args.defenses, "--seeds", str(args.seeds),
               "--jobs", str(args.jobs), "--out", str(out)]  # fmt: skip
    subprocess.run(command, check=False)
    rows = json.loads((out / "matrix.json").read_text())
    by_cell = {(r["attack"], r["defense"]): r for r in rows}
    clean = by_cell.get(("none", "fedavg"), {})
    base = None
    if clean.get("accuracy") is not None:
        base = (clean["accuracy"], clean.get("accuracy_ci95") or 0.0)
        print(f"\nclean FedAvg accuracy {base[0]:.3f} ± {base[1]:.3f}; 'below' marks a cell")
        print("whose interval lies below the clean FedAvg run's (else no measurable difference)")
    else:  # fedavg left out of --defenses (or its clean cells failed): no reference
        print("\nno clean FedAvg cell (add fedavg to --defenses to mark cells 'below' it)")
    defenses = list(dict.fromkeys(r["defense"] for r in rows))
    print("| attack | " + " | ".join(defenses) + " |")
    print("|---|" + "---:|" * len(defenses))
    for attack in dict.fromkeys(r["attack"] for r in rows):
        cells = []
        for d in defenses:
            row = by_cell.get((attack, d), {})
            if row.get("accuracy") is None:
                cells.append("failed")
                continue
            here = (row["accuracy"], row.get("accuracy_ci95") or 0.0)
            below = base is not None and not overlap(here, base) and here[0] < base[0]
            text = f"{here[0]:.3f} ± {here[1]:.3f}" + (" below" if below else "")
            if (bd := row.get("backdoor_success")) is not None:
                text += f" (bd {bd:.2f} ± {row.get('backdoor_success_ci95') or 0:.2f})"
            cells.append(text)
        print(f"| {attack} | " + " | ".join(cells) + " |")
    print(f"\ncommand: python benchmarks/poisoning.py --scenario {args.scenario} --seeds "
          f"{args.seeds} --attacks {args.attacks} --defenses {args.defenses}")  # fmt: skip


if __name__ == "__main__":
    main()
