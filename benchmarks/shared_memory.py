"""Total memory of a simulation run by the number of workers and the dataset's size.

Each arm is one ``fedrobust run`` (a fresh process, ``PYTHONPATH`` at ``--root``, the
checkout whose code runs: this one by default, an older one to measure "before") of a
generated scenario: ``synthetic:3x32x32:10:<n>`` over 20 IID clients, 4 sampled per
round, an MLP, ``--rounds`` rounds, ``simulation.num_cpus`` = the number of workers
(ClientApp actors running at once; ``cpus_per_client: 1``). Every 0.5 s the memory of
the run's whole process tree (the CLI, the SuperLink, the ServerApp, Ray and its
workers) is summed: RSS (resident pages; pages shared by several processes, such as a
memory-mapped store or torch's libraries, count once per process) and PSS (each shared
page divided among the processes mapping it: the tree's real footprint). psutil when it
is importable, else ``/proc``. The table gives each run's peak, its growth over the tiny
dataset with the same workers, and that growth divided by the dataset's size as uint8.

Target (issue 18): with 2 workers, a 1 GiB dataset (``--large 350000``) raises the
run's total memory by at most 1.5 GiB over a tiny one.

Each arm runs ``--repeats`` times (seeds 0, 1, ...; default 3); a cell is the mean ± the
half-width of its 95 % t interval, growths taken within a repeat. What no process
holds is not counted: the store's file in the operating system's page cache (up to the
dataset's size, shared by every process that reads it, reclaimable under pressure).

Run: ``.venv/bin/python benchmarks/shared_memory.py [--large 350000] [--workers 1,2,4]
[--rounds 1] [--repeats 3] [--root PATH] [--out runs/bench_shared_memory]``. Needs free
memory for the largest arm: before the federation store every process held the dataset
as float32 (4 bytes a pixel), so measure "before" with a smaller ``--large``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
PIXELS = 3 * 32 * 32
GIB = 2**30


def scenario(
    n: int, workers: int, rounds: int, test_fraction: float, seed: int = 0
) -> dict[str, object]:
    """The arm's scenario: only the dataset's size, the workers and the seed change."""
    return {
        "name": f"shared_memory_{n}_{workers}",
        "seed": seed,
        "data": {
            "dataset": f"synthetic:3x32x32:10:{n}",
            "partition": {"kind": "iid", "num_clients": 20},
            "test_fraction": test_fraction,
        },
        "model": {"name": "mlp", "hidden": [32]},
        "train": {"rounds": rounds, "local_epochs": 1, "batch_size": 64, "fraction_train": 0.2,
                  "optimizer": {"name": "sgd", "lr": 0.05}},
        "simulation": {"num_cpus": workers, "cpus_per_client": 1},
    }  # fmt: skip


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _proc_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of ``pid`` in bytes, from /proc (0, 0 when it is gone)."""
    try:
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        pss = 0
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
        return rss, pss
    except (OSError, ValueError, IndexError):
        return 0, 0


def tree_memory(pid: int) -> tuple[int, int, int]:
    """(summed RSS, summed PSS, processes) of ``pid`` and all its descendants."""
    try:
        import psutil
    except ImportError:
        pids = [pid, *_children(pid)]
        sizes = [_proc_memory(p) for p in pids]
        return sum(s[0] for s in sizes), sum(s[1] for s in sizes), len(pids)
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0, 0
    rss = pss = 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss, pss, len(procs)


def run_arm(root: Path, work: Path, doc: dict[str, object]) -> dict[str, float]:
    """Run one scenario, sampling the tree's memory every 0.5 s; its peaks and seconds."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / "scenario.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    with (work / "cli.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fedrobust.cli", "run", str(path), "--out", str(work / "run")],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
        )  # fmt: skip
        peak_rss = peak_pss = processes = 0
        while proc.poll() is None:
            rss, pss, count = tree_memory(proc.pid)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            processes = max(processes, count)
            time.sleep(0.5)
    if proc.returncode != 0:
        raise SystemExit(f"{doc['name']} failed (exit {proc.returncode}); see {work / 'cli.log'}")
    return {"rss": peak_rss / GIB, "pss": peak_pss / GIB, "processes": processes,
            "seconds": time.monotonic() - started}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", type=int, default=2000, help="examples of the tiny dataset")
    parser.add_argument("--large", type=int, default=350_000, help="examples of the large one")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="runs per arm (seeds 0..)")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--root", type=Path, default=HERE, help="the checkout to run")
    parser.add_argument("--out", type=Path, default=HERE / "runs" / "bench_shared_memory")
    args = parser.parse_args()
    from fedrobust.report.stats import format_values

    def cell(values: list[float]) -> str:
        return format_values(values, digits=2)

    workers = [int(w) for w in args.workers.split(",")]
    args.out = args.out.resolve()
    shutil.rmtree(args.out, ignore_errors=True)
    rows: dict[tuple[int, int, int], dict[str, float]] = {}
    for seed in range(args.repeats):
        for w in workers:
            for n in (args.tiny, args.large):
                doc = scenario(n, w, args.rounds, args.test_fraction, seed)
                work = args.out / f"n{n}_w{w}_seed{seed}"
                rows[(n, w, seed)] = run_arm(args.root.resolve(), work, doc)
                shutil.rmtree(work / "run" / "data", ignore_errors=True)  # the disk
                print(f"seed {seed} n={n} workers={w}: {rows[(n, w, seed)]}", flush=True)
    size = args.large * PIXELS / GIB
    print(f"\ncode: {args.root.resolve()}; large dataset {size:.2f} GiB as uint8 "
          f"({args.large} x 3x32x32), tiny {args.tiny}; {args.rounds} round(s); "
          f"{args.repeats} repeat(s)\n")  # fmt: skip
    print(
        "| workers | tiny PSS GiB | large PSS GiB | growth PSS GiB | growth / dataset "
        "| growth RSS GiB | growth vs 1 worker | seconds (large) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    seeds = range(args.repeats)
    for w in workers:
        tiny = [rows[(args.tiny, w, s)] for s in seeds]
        large = [rows[(args.large, w, s)] for s in seeds]
        growth = [b["pss"] - a["pss"] for a, b in zip(tiny, large, strict=True)]
        first = [rows[(args.large, workers[0], s)]["pss"] - rows[(args.tiny, workers[0], s)]["pss"]
                 for s in seeds]  # fmt: skip
        print(f"| {w} | {cell([a['pss'] for a in tiny])} | {cell([b['pss'] for b in large])} | "
              f"{cell(growth)} | {cell([g / size for g in growth])} | "
              f"{cell([b['rss'] - a['rss'] for a, b in zip(tiny, large, strict=True)])} | "
              f"{cell([g / f for g, f in zip(growth, first, strict=True)])} | "
              f"{cell([b['seconds'] for b in large])} |")  # fmt: skip


if __name__ == "__main__":
    main()
