"""Time per round of fedrobust beside a minimal hand-written Flower app doing the same work.

Both sides run the same scenario the same way: a private ``flower-superlink --simulation``
on a free port, ``flwr run <app> local --stream`` with the same number of supernodes and
client resources (Ray backend). Both build the same data split
(``fedrobust.data.build_federation``), the same initial model (``build_model`` after
``torch.manual_seed(seed)``), train every sampled client with ``fedrobust.train.local_train``
(same recipe, same per-(round, client) seed), aggregate with Flower's FedAvg and evaluate the
global model centrally on the same test set after every round. So both runs do the same
learning, and their final accuracies should agree (up to float summation order).

The baseline is this very file: its first half is a Flower ServerApp and ClientApp that
the driver (second half) copies into a temporary app directory beside a generated
``pyproject.toml``. Its ServerApp is Flower's ``FedAvg.start`` with an ``evaluate_fn``;
its ClientApp trains and replies with the weights and ``num-examples``, nothing else.

What fedrobust does on top, and what the ratio therefore charges to it: its own round
loop (seeded sampling by partition id, reply screening), the scenario sent with every
training message, a local validation pass on every client, per-round figures,
metrics.json and a checkpoint written after every round.

Two measures per round, each a median over rounds 2..N. Round 1 is left out: it pays
for starting the Ray actors, importing torch and building the data in each of them, a
one-off cost that says nothing about the per-round overhead, and the two sides pay it
differently (fedrobust's discovery query warms the actors before its round 1 starts).

- span: from sampling to the end of central evaluation. For fedrobust this is the
  ``seconds`` figure of each round in metrics.json; the baseline notes the same two
  instants (FedAvg's ``configure_train`` and the end of its ``evaluate_fn``).
- period: from one round's end to the next, so it includes what happens between rounds.
  fedrobust's ``seconds`` leaves out the metrics.json and checkpoint writes that follow
  each round; the period counts them. For fedrobust it is read from the modification time
  of each round's metrics.json (polled every 10 ms); for the baseline, from the ends of
  consecutive central evaluations.

Both servers collect replies through Flower's in-memory grid, which polls every 0.1 s,
so round times come in steps of about 0.1 s; on a busy machine the figures mean little.
For a steadier ratio run more rounds or ``--repeats`` (runs alternate between the sides).

The baseline mirrors plain FedAvg scenarios without augmentation, L1 or early stopping;
other scenarios are refused.

Run: ``.venv/bin/python benchmarks/overhead.py [--scenario PATH] [--rounds 10]
[--repeats 1] [--keep]`` (quickstart, 10 rounds: about 2 minutes on 2 idle cores).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from fedrobust.data import build_federation
from fedrobust.models.build import build_model
from fedrobust.report.metrics import METRICS_FILE, write_json_atomic
from fedrobust.scenario import Scenario, load_scenario
from fedrobust.train import evaluate, local_train, round_lr

# ===================================================================== the baseline app
# Everything down to the driver runs inside Flower (ServerApp process, Ray actors).

APP_MODULE = "overhead_baseline"


@functools.cache
def baseline_scenario(path: str, rounds: int) -> Scenario:
    """The scenario named in the run config, read once per process."""
    return load_scenario(path, {"train.rounds": rounds})


class TimedFedAvg(FedAvg):
    """FedAvg that notes when each round starts sampling and counts failed replies."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.started: list[float] = []
        self.failed_replies = 0

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.started.append(time.monotonic())
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self.failed_replies += sum(reply.has_error() for reply in replies)
        return super().aggregate_train(server_round, replies)


server_app = ServerApp()


@server_app.main()
def baseline_server(grid: Grid, context: Context) -> None:
    """FedAvg with central evaluation; writes per-round timings to ``result-file``."""
    cfg = context.run_config
    scenario = baseline_scenario(str(cfg["scenario"]), int(cfg["rounds"]))
    fed = build_federation(scenario.data, scenario.seed)
    torch.manual_seed(scenario.seed)
    model = build_model(scenario.model, fed.spec)
    strategy = TimedFedAvg(
        fraction_train=scenario.train.fraction_train,
        fraction_evaluate=0.0,
        min_train_nodes=scenario.train.min_train_clients,
        min_evaluate_nodes=0,
        min_available_nodes=scenario.data.partition.num_clients,
    )
    ended: list[float] = []
    accuracy: list[float] = []

    def central_evaluation(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model.load_state_dict(arrays.to_torch_state_dict())
        result = evaluate(model, fed.x_test, fed.y_test, fed.spec.num_classes)
        ended.append(time.monotonic())
        accuracy.append(result.accuracy)
        return MetricRecord({"accuracy": result.accuracy, "loss": result.loss})

    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(model.state_dict()),
        num_rounds=scenario.train.rounds,
        timeout=scenario.simulation.timeout,
        evaluate_fn=central_evaluation,
    )
    # ended[0] and accuracy[0] belong to the initial model (round 0).
    rounds = [
        {
            "round": rnd,
            "span": ended[rnd] - strategy.started[rnd - 1],
            "period": ended[rnd] - ended[rnd - 1],
            "accuracy": accuracy[rnd],
        }
        for rnd in range(1, len(ended))
    ]
    doc = {"rounds": rounds, "failed_replies": strategy.failed_replies}
    write_json_atomic(Path(str(cfg["result-file"])), doc)


client_app = ClientApp()


@client_app.train()
def baseline_train(msg: Message, context: Context) -> Message:
    """Train the global model on this node's partition, as fedrobust's client does."""
    cfg = context.run_config
    scenario = baseline_scenario(str(cfg["scenario"]), int(cfg["rounds"]))
    torch.set_num_threads(scenario.simulation.cpus_per_client)
    pid = int(context.node_config["partition-id"])
    server_round = int(msg.content.config_records["config"]["server-round"])
    fed = build_federation(scenario.data, scenario.seed)
    data = fed.clients[pid]
    model = build_model(scenario.model, fed.spec)
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    train = scenario.train
    result = local_train(
        model,
        data.x_train,
        data.y_train,
        train=train,
        num_classes=fed.spec.num_classes,
        seed=scenario.seed * 1_000_003 + server_round * 10_007 + pid,  # fedrobust's seed
        lr=round_lr(train.lr_schedule, train.optimizer.lr, server_round, train.rounds),
    )
    content = RecordDict(
        {
            "arrays": ArrayRecord(model.state_dict()),
            "metrics": MetricRecord({"num-examples": result.num_examples}),
        }
    )
    return Message(content=content, reply_to=msg)


# ========================================================================== the driver

BASELINE_PYPROJECT = f"""\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "overhead-baseline"
version = "1.0.0"
description = "Minimal FedAvg app: the baseline of benchmarks/overhead.py"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "fedrobust-benchmarks"

[tool.flwr.app.components]
serverapp = "{APP_MODULE}:server_app"
clientapp = "{APP_MODULE}:client_app"

[tool.flwr.app.config]
scenario = ""
rounds = 1
result-file = ""
"""


@dataclass
class Timings:
    """Per-round seconds of one side, pooled over repeats (round 1 already left out)."""

    spans: list[float] = field(default_factory=list)
    periods: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)  # final accuracy of each run


class RoundClock(threading.Thread):
    """Notes when each round's row lands in a running fedrobust's metrics.json.

    The time is the file's modification time (when the ServerApp wrote it), so the
    polling delay does not enter the figures; it only has to see every version.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.written: dict[int, float] = {}  # rounds in the file -> mtime of that version
        self._done = threading.Event()

    def run(self) -> None:
        last = -1
        while not self._done.wait(0.01):
            try:
                with self.path.open(encoding="utf-8") as handle:
                    mtime = os.fstat(handle.fileno()).st_mtime_ns
                    if mtime == last:
                        continue
                    last = mtime
                    doc = json.load(handle)
            except (OSError, json.JSONDecodeError):
                continue
            if doc.get("status") == "running":
                self.written.setdefault(len(doc["rounds"]), mtime / 1e9)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def periods(self, rounds: int) -> list[float]:
        """Seconds between the writes of rounds r-1 and r, for r = 2..rounds (seen ones)."""
        w = self.written
        return [w[r] - w[r - 1] for r in range(2, rounds + 1) if r in w and r - 1 in w]


def check_mirrored(scenario: Scenario) -> None:
    """Refuse scenarios whose training the baseline app does not reproduce."""
    unsupported = {
        "strategy other than fedavg": scenario.strategy.name != "fedavg",
        "data.augment": bool(scenario.data.augment),
        "train.l1": scenario.train.l1 > 0,
        "train.early_stopping": scenario.train.early_stopping is not None,
    }
    found = [name for name, present in unsupported.items() if present]
    if found:
        sys.exit(f"the baseline app does not mirror: {', '.join(found)}")


def run_fedrobust(scenario_path: Path, scenario: Scenario, rounds: int, workdir: Path) -> Timings:
    """One ``fedrobust run``; per-round ``seconds`` from metrics.json."""
    from fedrobust.simulation import run_simulation

    run_dir = workdir / "run"
    clock = RoundClock(run_dir / METRICS_FILE)
    clock.start()
    try:
        doc = run_simulation(scenario_path, scenario, run_dir, rounds=rounds)
    finally:
        clock.stop()
    rows = doc["rounds"]
    return Timings(
        spans=[float(row["seconds"]) for row in rows[1:]],
        periods=clock.periods(len(rows)),
        accuracies=[float(doc["final"]["accuracy"])],
    )


def run_baseline(scenario_path: Path, scenario: Scenario, rounds: int, workdir: Path) -> Timings:
    """One run of the baseline app, launched the way fedrobust launches its own."""
    from fedrobust.simulation import federation_config

    app_dir = workdir / "app"
    app_dir.mkdir(parents=True)
    shutil.copyfile(__file__, app_dir / f"{APP_MODULE}.py")
    (app_dir / "pyproject.toml").write_text(BASELINE_PYPROJECT, encoding="utf-8")
    result_file = workdir / "baseline.json"
    run_config = [
        f"scenario={json.dumps(str(scenario_path.resolve()))}",
        f"rounds={rounds}",
        f"result-file={json.dumps(str(result_file))}",
    ]
    launch_app(app_dir, run_config, federation_config(scenario), workdir / "run", result_file)
    doc = json.loads(result_file.read_text(encoding="utf-8"))
    if doc["failed_replies"]:
        raise RuntimeError(f"{doc['failed_replies']} baseline replies failed; see {workdir}")
    rows = doc["rounds"]
    if len(rows) != rounds:
        raise RuntimeError(f"the baseline ran {len(rows)} of {rounds} rounds")
    return Timings(
        spans=[row["span"] for row in rows[1:]],
        periods=[row["period"] for row in rows[1:]],
        accuracies=[rows[-1]["accuracy"]],
    )


def launch_app(
    app_dir: Path, run_config: list[str], federation: list[str], run_dir: Path, done: Path
) -> None:
    """Run ``app_dir`` on a private simulation SuperLink until ``done`` appears.

    The same launcher as ``fedrobust.simulation.run_simulation``; logs go to
    ``run_dir/logs``.
    """
    from fedrobust.launch import RunFailed
    from fedrobust.simulation import launch_flower_app

    launch_flower_app(app_dir, run_dir, run_config, federation, lambda: not done.exists())
    if not done.exists():
        tail = (run_dir / "logs" / "flwr.log").read_text(encoding="utf-8", errors="replace")
        raise RunFailed(f"the baseline wrote no results; see {run_dir / 'logs'}\n{tail[-2000:]}")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(scenario: Scenario, rounds: int, ours: Timings, base: Timings) -> None:
    """Medians of both sides, their ratio, and the final accuracies."""
    print(
        f"\n{scenario.name}: {scenario.data.partition.num_clients} clients, {rounds} rounds, "
        f"{len(ours.accuracies)} run(s) each; medians over rounds 2..{rounds}\n"
    )
    header = f"{'':<34}{'fedrobust':>11}{'baseline':>11}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for label, a, b in (
        ("round span, s (metrics 'seconds')", median(ours.spans), median(base.spans)),
        ("round period, s (end to end)", median(ours.periods), median(base.periods)),
    ):
        print(f"{label:<34}{a:>11.3f}{b:>11.3f}{a / b:>8.3f}")
    label = "final accuracy (last run)"
    print(f"{label:<34}{ours.accuracies[-1]:>11.4f}{base.accuracies[-1]:>11.4f}")
    print(f"\nratio goal: <= 1.05 (span ratio {median(ours.spans) / median(base.spans):.3f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    quickstart = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"
    parser.add_argument("--scenario", type=Path, default=quickstart)
    parser.add_argument("--rounds", type=int, default=10, help="rounds per run (>= 2)")
    parser.add_argument(
        "--repeats", type=int, default=1, help="alternate this many runs of each side"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run directories")
    args = parser.parse_args(argv)
    if args.rounds < 2 or args.repeats < 1:
        parser.error("--rounds must be >= 2 and --repeats >= 1")
    scenario = load_scenario(args.scenario, {"train.rounds": args.rounds})
    check_mirrored(scenario)

    workdir = Path(tempfile.mkdtemp(prefix="fedrobust-overhead-"))
    ours, base = Timings(), Timings()
    try:
        for repeat in range(1, args.repeats + 1):
            for name, runner, pooled in (
                ("fedrobust", run_fedrobust, ours),
                ("baseline", run_baseline, base),
            ):
                print(f"[{repeat}/{args.repeats}] {name}: {args.rounds} rounds ...", flush=True)
                started = time.monotonic()
                result = runner(args.scenario, scenario, args.rounds, workdir / f"{name}-{repeat}")
                pooled.spans += result.spans
                pooled.periods += result.periods
                pooled.accuracies += result.accuracies
                print(
                    f"    rounds 2..{args.rounds}: "
                    + " ".join(f"{s:.2f}" for s in result.spans)
                    + f" s  (whole run {time.monotonic() - started:.0f} s)",
                    flush=True,
                )
    finally:
        if args.keep:
            print(f"run directories kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(scenario, args.rounds, ours, base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
