"""The GPU check: bundled scenarios on ``cuda`` beside the same on ``cpu``, one table.

Runs quickstart, DP-SGD (``dp_sample``), PGD-AT (``adversarial_pgd_at``, adversarial
training from round 2, robust accuracy measured at the last round on 200 examples) and a
CIFAR-shaped synthetic run (``synthetic_cifar`` on 10,000 images) for ``--rounds``
rounds on each device of ``--devices``, in this process (:mod:`fedrobust.apps.inprocess`:
the server's loop against the real ClientApp, no Ray, so it runs where only torch, flwr,
opacus and torchattacks are installed), and prints accuracy, epsilon, PGD accuracy and
seconds per round (rounds after the first: no CUDA start-up) with each device's time over
the CPU's. ``benchmarks/gpu_check.sh`` installs what a GPU machine lacks and runs this.

Run: ``python benchmarks/gpu_check.py [--devices cpu,cuda] [--rounds 3] [--out runs/gpu_check]``.
A device this machine does not have is skipped with a note.
"""

from __future__ import annotations

import argparse
import copy
import logging
import platform
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml

from fedrobust.apps.inprocess import run_in_process
from fedrobust.bundled import resolve_scenario
from fedrobust.scenario import parse_scenario


def checks(rounds: int) -> dict[str, dict[str, Any]]:
    """Each bundled scenario checked, with what it changes beyond device and rounds."""
    return {
        "quickstart": {},
        "dp_sample": {},
        "adversarial_pgd_at": {
            "adversarial": {
                "training": {"start_round": 2},
                "evaluation": {
                    "every_n_rounds": rounds,
                    "num_samples": 200,
                    "eps": [0.2],
                    "attacks": ["pgd"],
                },
            }
        },  # fmt: skip
        "synthetic_cifar": {"data": {"dataset": "synthetic:3x32x32:10:10000"}},
    }


def merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``change`` written over it, section by section."""
    out = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def run_check(
    name: str, change: dict[str, Any], device: str, rounds: int, out: Path
) -> dict[str, Any]:
    """One scenario on one device; the figures of the table's row."""
    raw = yaml.safe_load(resolve_scenario(name).read_text())
    raw = merged(raw, change)
    raw["train"]["rounds"] = min(rounds, int(raw["train"].get("rounds", rounds)))
    raw["train"]["device"] = device
    doc = run_in_process(parse_scenario(raw), out / f"{name}-{device.replace(':', '')}")
    per_round = [r["seconds"] for r in doc["rounds"]]
    steady = per_round[1:] or per_round
    last = doc["rounds"][-1]
    robust = (last.get("robust_accuracy") or {}).get("pgd@0.2")
    return {
        "rounds": len(per_round),
        "accuracy": doc["final"].get("accuracy"),
        "epsilon": last.get("epsilon"),
        "pgd@0.2": robust,
        "seconds": statistics.mean(steady),
    }


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cpu,cuda")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--out", type=Path, default=Path("runs/gpu_check"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    for name in ("flwr", ""):
        logging.getLogger(name).setLevel(logging.ERROR)
    devices = []
    for device in args.devices.split(","):
        if device.startswith("cuda") and not torch.cuda.is_available():
            print(f"note: {device} skipped: torch {torch.__version__} sees no GPU", file=sys.stderr)
            continue
        devices.append(device)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    cpu = platform.processor() or platform.machine()
    print(
        f"torch {torch.__version__}, GPU: {gpu}, CPU: {cpu} ({torch.get_num_threads()} threads)\n"
    )
    print("| scenario | device | rounds | accuracy | epsilon | PGD-20@0.2 | s/round | vs cpu |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    wanted = set(filter(None, args.only.split(",")))
    for name, change in checks(args.rounds).items():
        if wanted and name not in wanted:
            continue
        cpu_seconds = None
        for device in devices:
            row = run_check(name, change, device, args.rounds, args.out)
            if device == "cpu":
                cpu_seconds = row["seconds"]
            ratio = None if cpu_seconds is None else row["seconds"] / cpu_seconds
            print(f"| {name} | {device} | {row['rounds']} | {fmt(row['accuracy'])} | "
                  f"{fmt(row['epsilon'], 2)} | {fmt(row['pgd@0.2'])} | {row['seconds']:.2f} | "
                  f"{fmt(ratio, 2)} |", flush=True)  # fmt: skip
    print(
        f"\ncommand: python benchmarks/gpu_check.py --devices {args.devices} --rounds {args.rounds}"
    )


if __name__ == "__main__":
    main()
