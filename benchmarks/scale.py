"""Scale: seconds per round and the run's total memory as the federation grows.

(a) clients: ``scenarios/many_clients.yaml`` with ``--clients`` clients in all (default
    10, 100, 1,000, 10,000) and 40 synthetic images per client (so every sampled client
    trains on as much data in every row), always 10 sampled per round (``fraction_train`` tiny,
    ``min_train_clients: 10``), ``--rounds`` rounds (default 3), each a ``fedrobust run``
    simulation in a fresh process. Reported per row: seconds per round (the mean of
    rounds 2.. from metrics.json: round 1 pays the Ray workers' start-up), start-up
    seconds (the command's wall time minus the rounds), the peak total memory of the run
    (the sum of the RSS of the command's whole process tree: SuperLink, simulation,
    Ray's workers; sampled every 0.5 s with psutil, else /proc) and both ratios to the
    first row. Target: 10,000 clients within 1.5x the seconds per round of 10.
(b) workers: PLACEHOLDER for the shared-memory data store's half of issue #18 (1 / 2 /
    4 Ray workers on a large synthetic dataset: the run's total memory should grow by
    about one dataset, not one per worker). :func:`worker_rows` runs it by varying
    ``simulation.num_cpus`` (the Ray workers: one client per CPU) on
    ``--workers-dataset``; the store's author owns the settings and the target.

Run: ``.venv/bin/python benchmarks/scale.py [--clients 10,100,1000,10000] [--rounds 3]
[--workers 1,2,4] [--out runs/bench_scale]`` from the checkout. One run per row; on a
shared machine timings move by tens of percent: compare ratios from the same run.
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

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "many_clients.yaml"
SAMPLED = 10
#: Images per client in the synthetic source (32 after the test split): every row's
#: sampled clients train on as much data as the shipped scenario's.
PER_CLIENT = 40
ROUND_TARGET = 1.5


@dataclass
class Row:
    """One run: its label, seconds per round, start-up seconds, peak memory (MiB)."""

    label: str
    per_round: float
    startup: float
    peak_mib: float
    status: str


# ================================================================ memory of a process tree


def tree_rss(pid: int) -> int:
    """Bytes of RSS summed over ``pid`` and every descendant (0 once it is gone)."""
    try:
        import psutil
    except ImportError:
        return _proc_tree_rss(pid)
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def _proc_tree_rss(pid: int) -> int:
    """:func:`tree_rss` from /proc, for machines without psutil."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            pages = int((entry / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(int(stat[1]), []).append(int(entry.name))
        rss[int(entry.name)] = pages * page
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo.extend(children.get(current, []))
    return total


class PeakMemory:
    """Samples :func:`tree_rss` of a process every ``interval`` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, tree_rss(self.pid))

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


def table(title: str, rows: list[Row]) -> str:
    """Markdown: one row per run, ratios to the first row."""
    base = rows[0]
    lines = [
        f"| {title} | s / round (rounds 2..) | start-up s | peak memory MiB | round ratio |"
        " memory ratio | status |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.label} | {row.per_round:.3f} | {row.startup:.1f} | {row.peak_mib:.0f} | "
            f"{row.per_round / base.per_round:.2f}x | {row.peak_mib / base.peak_mib:.2f}x | "
            f"{row.status} |"
        )
    return "\n".join(lines)


def client_rows(counts: list[int], rounds: int, out: Path, timeout: float) -> list[Row]:
    """(a): the same scenario, 10 sampled per round, ``counts`` clients in all."""
    base = yaml.safe_load(SCENARIO.read_text())
    rows = []
    for n in counts:
        name = f"clients_{n}"
        path = write_arm(
            base, out, name, data__dataset=f"synthetic:1x8x8:10:{PER_CLIENT * n}",
            data__partition__num_clients=n, train__fraction_train=1e-6,
            train__min_train_clients=SAMPLED,
        )  # fmt: skip
        rows.append(run_arm(f"{n} clients", path, out / name, rounds, timeout))
        print(f"{rows[-1]}", flush=True)
    return rows


def worker_rows(
    workers: list[int], rounds: int, out: Path, timeout: float, dataset: str
) -> list[Row]:
    """(b) PLACEHOLDER for the shared data store: ``workers`` Ray workers
    (``simulation.num_cpus``, one CPU per client) on ``dataset``, 10 clients all sampled.
    The store's author sets the dataset (issue #18: a 1 GiB synthetic one) and reads the
    memory column: total memory should grow by about one dataset, not one per worker."""
    base = yaml.safe_load(SCENARIO.read_text())
    rows = []
    for count in workers:
        name = f"workers_{count}"
        path = write_arm(
            base, out, name, data__dataset=dataset, data__partition__num_clients=SAMPLED,
            train__fraction_train=1.0, simulation__num_cpus=count,
        )  # fmt: skip
        rows.append(run_arm(f"{count} workers", path, out / name, rounds, timeout))
        print(f"{rows[-1]}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="10,100,1000,10000", help="comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="", help="e.g. 1,2,4 (placeholder half)")
    parser.add_argument("--workers-dataset", default="synthetic:3x32x32:10:20000")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_scale")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    tables = []
    if args.clients:
        counts = [int(c) for c in args.clients.split(",")]
        rows = client_rows(counts, args.rounds, out, args.timeout)
        tables.append(table(f"clients ({SAMPLED} sampled per round)", rows))
        worst = max(r.per_round for r in rows) / rows[0].per_round
        verdict = "met" if worst <= ROUND_TARGET else "NOT met"
        tables.append(f"\nseconds per round within {ROUND_TARGET}x of the first row: "
                      f"{verdict} (worst {worst:.2f}x)")  # fmt: skip
    if args.workers:
        workers = [int(w) for w in args.workers.split(",")]
        rows = worker_rows(workers, args.rounds, out, args.timeout, args.workers_dataset)
        tables.append(table(f"Ray workers ({args.workers_dataset})", rows))
    print("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
