"""SecAgg+ round time: ours vs a plain round, beside Flower's legacy SecAggPlusWorkflow.

For 10 and 50 digits clients and two MLPs (hidden [16]: 1.2k parameters; hidden
[1024, 960]: 1.05M parameters), five real Flower simulations of ``--rounds`` rounds each:

- fedrobust plain (message API, FedAvg); fedrobust with ``privacy.secure_aggregation``
  pipelined (the default: two exchanges per round) and with ``pipeline: false`` (four);
- Flower's legacy path, plain ``DefaultWorkflow`` and ``SecAggPlusWorkflow`` with
  ``secaggplus_mod`` (``benchmarks/flower_secagg``), same data, model and local training.

A round's time is from sending the training instructions to the aggregate (fedrobust:
``train_seconds`` in metrics.json; Flower: configure_fit to aggregate_fit), averaged over
the steady-state rounds: every round but the first (which sets up the first keys) and the
last (which prepares no next round). All use num_shares 5, reconstruction threshold 3.

Run: ``.venv/bin/python benchmarks/secagg.py [--rounds 4] [--clients 10,50]`` (about
35 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from fedrobust.scenario import parse_scenario
from fedrobust.simulation import federation_config, launch_flower_app, run_simulation

FLOWER_APP = Path(__file__).resolve().parent / "flower_secagg"
MODELS = {"small": [16], "1M": [1024, 960]}


def steady(seconds: list[float]) -> float:
    """Mean of the rounds after the first and before the last (all after the first when
    there are fewer than three)."""
    kept = seconds[1:-1] if len(seconds) >= 3 else seconds[1:]
    return sum(kept) / len(kept)


def scenario_doc(
    clients: int, hidden: list[int], rounds: int, secagg: bool, pipeline: bool = True
) -> dict:
    doc: dict = {
        "name": "bench_secagg",
        "seed": 0,
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": clients}},
        "model": {"name": "mlp", "hidden": hidden},
        "train": {"rounds": rounds, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.05}},
        "simulation": {"timeout": 1200},
    }
    if secagg:
        secure = {"num_shares": 5, "reconstruction_threshold": 3, "timeout": 1200,
                  "pipeline": pipeline}  # fmt: skip
        doc["privacy"] = {"secure_aggregation": secure}
    return doc


def ours(doc: dict, work: Path) -> float:
    path = work / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = run_simulation(path, parse_scenario(doc), work / "run")
    return steady([r["train_seconds"] for r in result["rounds"]])


def flower(doc: dict, work: Path, secagg: bool) -> float:
    path = work / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = work / "flower.json"
    run_config = [f"scenario={json.dumps(str(path))}", f"out={json.dumps(str(out))}",
                  f"secagg={'true' if secagg else 'false'}"]  # fmt: skip
    launch_flower_app(FLOWER_APP, work, run_config, federation_config(parse_scenario(doc)),
                      lambda: True)  # fmt: skip
    result = json.loads(out.read_text())
    if result["failures"]:
        raise RuntimeError(f"Flower's run had {result['failures']} failures; see {work}/logs")
    return steady(result["round_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--clients", default="10,50")
    parser.add_argument("--models", default="small,1M")
    args = parser.parse_args()
    rows = []
    for clients in [int(c) for c in args.clients.split(",")]:
        for name in args.models.split(","):
            hidden = MODELS[name]
            times = {}
            for label, secagg, pipeline in (
                ("plain", False, True),
                ("secagg", True, True),
                ("secagg4", True, False),
            ):
                doc = scenario_doc(clients, hidden, args.rounds, secagg, pipeline)
                with tempfile.TemporaryDirectory() as tmp:
                    times[f"ours {label}"] = ours(doc, Path(tmp))
                if label != "secagg4":
                    with tempfile.TemporaryDirectory() as tmp:
                        times[f"flower {label}"] = flower(doc, Path(tmp), secagg)
            rows.append((clients, name, times))
            print(clients, name, {k: round(v, 2) for k, v in times.items()}, flush=True)
    print("\n| clients | model | ours plain s | ours SecAgg+ s (2 exchanges) | ratio "
          "| ours SecAgg+ s (4 exchanges) | ratio | Flower plain s | Flower SecAgg+ s "
          "| ratio |")  # fmt: skip
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for clients, name, t in rows:
        plain, flower_ratio = t["ours plain"], t["flower secagg"] / t["flower plain"]
        print(f"| {clients} | {name} | {plain:.2f} | {t['ours secagg']:.2f} | "
              f"{t['ours secagg'] / plain:.2f}x | {t['ours secagg4']:.2f} | "
              f"{t['ours secagg4'] / plain:.2f}x | {t['flower plain']:.2f} | "
              f"{t['flower secagg']:.2f} | {flower_ratio:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
