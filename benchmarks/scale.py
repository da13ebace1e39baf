"""Scale: seconds per round and the run's total memory as the federation grows.

(a) clients: ``scenarios/many_clients.yaml`` with ``--clients`` clients in all (default
    10, 100, 1,000, 10,000) and 40 synthetic images per client (so every sampled client
    trains on as much data in every row), always 10 sampled per round (``fraction_train`` tiny,
    ``min_train_clients: 10``), ``--rounds`` rounds (default 3), each a ``fedrobust run``
    simulation in a fresh process. Reported per row: seconds per round (the mean of
    rounds 2.. from metrics.json: round 1 pays the Ray workers' start-up), start-up
    seconds (the command's wall time minus the rounds), the peak total memory of the run
    (PSS summed over the command's whole process tree: SuperLink, simulation, Ray's
    workers; sampled every 0.5 s, :func:`benchmarks.shared_memory.tree_memory`) and
    both ratios to the first row. Target: 10,000 clients within 1.5x the seconds per
    round of 10.
(b) workers: ``--workers`` Ray workers (``simulation.num_cpus``, one client per CPU) on
    ``--workers-dataset`` (default a 1 GiB ``synthetic:3x32x32`` source), 10 clients all
    sampled, the same columns and ratios to the first row. What the shared federation
    store changes (issue 18: total memory grows by about one dataset, not one per
    worker) is measured against a tiny dataset by ``benchmarks/shared_memory.py``.

Every row runs ``--repeats`` times (default 3), with seeds 0, 1, ...; the rows of one
repeat run one after the other, so a slow spell of a shared machine hits every row of it.
Each cell is the mean ± the half-width of its 95 % t interval over the repeats; a ratio is
taken within a repeat, then averaged.

Run: ``.venv/bin/python benchmarks/scale.py [--clients 10,100,1000,10000] [--rounds 3]
[--repeats 3] [--workers 1,2,4] [--out runs/bench_scale]`` from the checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.shared_memory import tree_memory  # noqa: E402
from fedrobust.report.stats import format_values, mean_ci  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "many_clients.yaml"
SAMPLED = 10
#: Images per client in the synthetic source (32 after the test split): every row's
#: sampled clients train on as much data as the shipped scenario's.
PER_CLIENT = 40
ROUND_TARGET = 1.5
WORKERS_DATASET = "synthetic:3x32x32:10:350000"


@dataclass
class Row:
    """One run: its label, seconds per round, start-up seconds, peak memory (MiB)."""

    label: str
    per_round: float
    startup: float
    peak_mib: float
    status: str


# ================================================================ memory of a process tree


class PeakMemory:
    """Samples the PSS of a process tree (:func:`benchmarks.shared_memory.tree_memory`)
    every ``interval`` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, tree_memory(self.pid)[1])

    def stop(self) -> int:
        """Stop sampling; the peak in bytes."""
        self._stop.set()
        self._thread.join()
        return self.peak


# ================================================================ one run


def write_arm(base: dict[str, Any], out: Path, name: str, **changes: Any) -> Path:
    """``base`` with ``changes`` (``data__partition__num_clients=...``: the path to a field,
    joined by ``__``) as ``out/name.yaml``."""
    doc = json.loads(json.dumps(base))
    doc["name"] = name
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = doc
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def run_arm(label: str, scenario: Path, run_dir: Path, rounds: int, timeout: float) -> Row:
    """``fedrobust run`` of ``scenario`` in a fresh process, measured."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "fedrobust.cli", "run", str(scenario), "--out",
               str(run_dir), "--rounds", str(rounds)]  # fmt: skip
    started = time.monotonic()
    with (run_dir.parent / f"{run_dir.name}.log").open("wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        memory = PeakMemory(proc.pid)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()
        peak = memory.stop()
    wall = time.monotonic() - started
    try:
        doc = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        doc = {"status": "no metrics.json", "rounds": []}
    seconds = [r["seconds"] for r in doc["rounds"]]
    later = seconds[1:] or seconds
    per_round = sum(later) / len(later) if later else float("nan")
    status = doc.get("status", "?") if proc.returncode == 0 else f"exit {proc.returncode}"
    return Row(label, per_round, wall - sum(seconds), peak / 2**20, status)


# ================================================================ tables


def round_ratios(repeats: list[list[Row]]) -> list[list[float]]:
    """Per row, its seconds per round over the first row's, one value per repeat."""
    return [[rows[i].per_round / rows[0].per_round for rows in repeats]
            for i in range(len(repeats[0]))]  # fmt: skip


def table(title: str, repeats: list[list[Row]]) -> str:
    """Markdown: one row per arm, each cell over the repeats, ratios to the first row
    taken within each repeat."""
    rounds = round_ratios(repeats)
    lines = [
        f"| {title} | s / round (rounds 2..) | start-up s | peak memory (PSS) MiB |"
        " round ratio | memory ratio | status |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for i, label in enumerate(row.label for row in repeats[0]):
        runs = [rows[i] for rows in repeats]
        memory = [rows[i].peak_mib / rows[0].peak_mib for rows in repeats]
        statuses = sorted({run.status for run in runs})
        cells = [
            format_values([r.per_round for r in runs], 3),
            format_values([r.startup for r in runs], 1),
            format_values([r.peak_mib for r in runs], 0),
            format_values(rounds[i], 2) + "x",
            format_values(memory, 2) + "x",
            ", ".join(statuses),
        ]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines)


def verdict(repeats: list[list[Row]]) -> str:
    """Whether every row's mean round ratio is within :data:`ROUND_TARGET`."""
    means = [mean_ci(ratios)[0] for ratios in round_ratios(repeats)]
    worst = max(means)
    met = "met" if worst <= ROUND_TARGET else "NOT met"
    return (f"seconds per round within {ROUND_TARGET}x of the first row: {met} "
            f"(worst mean ratio {worst:.2f}x over {len(repeats)} repeat(s))")  # fmt: skip


def client_rows(counts: list[int], rounds: int, out: Path, timeout: float, seed: int) -> list[Row]:
    """(a): the same scenario, 10 sampled per round, ``counts`` clients in all."""
    base = yaml.safe_load(SCENARIO.read_text())
    rows = []
    for n in counts:
        name = f"clients_{n}_seed{seed}"
        path = write_arm(
            base, out, name, seed=seed, data__dataset=f"synthetic:1x8x8:10:{PER_CLIENT * n}",
            data__partition__num_clients=n, train__fraction_train=1e-6,
            train__min_train_clients=SAMPLED,
        )  # fmt: skip
        rows.append(run_arm(f"{n} clients", path, out / name, rounds, timeout))
        print(f"seed {seed}: {rows[-1]}", flush=True)
    return rows


def worker_rows(
    workers: list[int], rounds: int, out: Path, timeout: float, dataset: str, seed: int
) -> list[Row]:
    """(b): ``workers`` Ray workers (``simulation.num_cpus``, one CPU per client) on
    ``dataset``, 10 clients all sampled."""
    base = yaml.safe_load(SCENARIO.read_text())
    rows = []
    for count in workers:
        name = f"workers_{count}_seed{seed}"
        path = write_arm(
            base, out, name, seed=seed, data__dataset=dataset,
            data__partition__num_clients=SAMPLED, train__fraction_train=1.0,
            simulation__num_cpus=count, simulation__cpus_per_client=1,
            model__normalize=None,  # the base's is for one channel
        )  # fmt: skip
        rows.append(run_arm(f"{count} workers", path, out / name, rounds, timeout))
        print(f"seed {seed}: {rows[-1]}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="10,100,1000,10000", help="comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="runs per row (seeds 0..)")
    parser.add_argument("--workers", default="", help="e.g. 1,2,4")
    parser.add_argument("--workers-dataset", default=WORKERS_DATASET)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_scale")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.rounds < 1:
        parser.error("--repeats and --rounds must be at least 1")
    out = args.out.resolve()
    tables = []
    if args.clients:
        counts = [int(c) for c in args.clients.split(",")]
        repeats = [client_rows(counts, args.rounds, out, args.timeout, seed)
                   for seed in range(args.repeats)]  # fmt: skip
        tables.append(table(f"clients ({SAMPLED} sampled per round)", repeats))
        tables.append(verdict(repeats))
    if args.workers:
        workers = [int(w) for w in args.workers.split(",")]
        repeats = [worker_rows(workers, args.rounds, out, args.timeout, args.workers_dataset, seed)
                   for seed in range(args.repeats)]  # fmt: skip
        tables.append(table(f"Ray workers ({args.workers_dataset})", repeats))
    print("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
