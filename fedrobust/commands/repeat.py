"""``fedrobust repeat``: a scenario over N seeds, summarised with 95 % confidence intervals.

Each seed ``s`` (the scenario's seed, seed + 1, ..., seed + N - 1) is a normal
``fedrobust run SCENARIO --seed s --out DIR/seed-<s>`` in a process of its own (its
console goes to ``DIR/seed-<s>/console.log``), ``--jobs`` at a time. A seed whose
``metrics.json`` already completed with the same scenario is not run again. Then
``DIR/summary.json`` and ``DIR/summary.md`` summarise every numeric ``final`` figure
(:mod:`fedrobust.report.summary`) over the seeds that completed; a failed seed is listed
with its error and makes the exit code 1.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fedrobust.commands.common import overrides
from fedrobust.errors import FedrobustError

SEED_DIR = "seed-{seed}"
CONSOLE_LOG = "console.log"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
MAX_SEED = 2**31 - 1
POLL_SECONDS = 0.5


@dataclass
class SeedResult:
    """How one seed ended: its ``final`` figures, or the error that stopped it."""

    seed: int
    final: dict[str, Any] | None
    error: str | None


def seed_list(first: int, count: int, option: str = "--seeds") -> list[int]:
    """``first, first + 1, ..., first + count - 1``.

    Raises
    ------
    FedrobustError
        Naming ``option`` when the last seed would leave the valid range [0, 2**31).
    """
    last = first + count - 1
    if last > MAX_SEED:
        raise FedrobustError(
            option, f"seeds {first}..{last} run past the largest seed {MAX_SEED}; use fewer"
        )
    return list(range(first, first + count))


def reproduce_command(args: argparse.Namespace) -> str:
    """The ``fedrobust repeat`` command line that gives the same summary."""
    parts = ["fedrobust", "repeat", str(args.scenario), "--seeds", str(args.seeds)]
    if args.out:
        parts += ["--out", str(args.out)]
    if args.rounds is not None:
        parts += ["--rounds", str(args.rounds)]
    if args.jobs != 1:
        parts += ["--jobs", str(args.jobs)]
    return shlex.join(parts)


def run_command(scenario_path: Path, seed: int, seed_dir: Path, rounds: int | None) -> list[str]:
    """The ``fedrobust run`` command of one seed (this interpreter, this checkout)."""
    command = [sys.executable, "-m", "fedrobust.cli", "run", str(scenario_path),
               "--out", str(seed_dir), "--seed", str(seed)]  # fmt: skip
    if rounds is not None:
        command += ["--rounds", str(rounds)]
    return command


def completed_final(seed_dir: Path, scenario: Any) -> dict[str, Any] | None:
    """``final`` of ``seed_dir/metrics.json`` when it completed with ``scenario``, else None."""
    from fedrobust.rundir import RunDir

    try:
        doc = json.loads(RunDir(seed_dir).metrics.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("status") != "completed":
        return None
    if doc.get("scenario") != scenario.model_dump(mode="json"):
        return None
    return doc.get("final")


def seed_result(seed: int, seed_dir: Path, returncode: int) -> SeedResult:
    """The result of a finished ``fedrobust run`` process: its final figures or its error."""
    from fedrobust.rundir import RunDir

    try:
        doc = json.loads(RunDir(seed_dir).metrics.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = {}
    if returncode == 0 and doc.get("status") == "completed":
        return SeedResult(seed, doc.get("final") or {}, None)
    if doc.get("error"):
        return SeedResult(seed, None, str(doc["error"]))
    try:
        lines = (seed_dir / CONSOLE_LOG).read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return SeedResult(seed, None, last or f"fedrobust run exited with code {returncode}")


def run_seeds(
    commands: dict[int, tuple[list[str], Path]],
    jobs: int,
    on_done: Any,
) -> dict[int, SeedResult]:
    """Run each seed's command, ``jobs`` at a time, each in a process of its own.

    Parameters
    ----------
    commands : dict
        ``{seed: (command, seed_dir)}``, started in ascending seed order.
    jobs : int
        Processes at the same time.
    on_done : callable
        Called with each :class:`SeedResult` as its process ends.

    Returns
    -------
    dict
        ``{seed: SeedResult}``.

    Notes
    -----
    The processes are started from this (the main) thread with ``die_with_parent``, so
    none outlives the CLI; each ``fedrobust run`` then guards its own Flower processes.
    """
    from fedrobust.lifetime import die_with_parent

    pending = sorted(commands)
    running: dict[int, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}
    results: dict[int, SeedResult] = {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                seed = pending.pop(0)
                command, seed_dir = commands[seed]
                seed_dir.mkdir(parents=True, exist_ok=True)
                log = (seed_dir / CONSOLE_LOG).open("wb")
                process = subprocess.Popen(  # noqa: S603 - our own CLI, argument list
                    command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
                )
                running[seed] = (process, log)
            for seed in sorted(running):
                process, log = running[seed]
                if process.poll() is None:
                    continue
                log.close()
                del running[seed]
                results[seed] = seed_result(seed, commands[seed][1], process.returncode)
                on_done(results[seed])
            if running:
                time.sleep(POLL_SECONDS)
    finally:
        for process, log in running.values():
            process.terminate()
            process.wait()
            log.close()
    return results


def cmd_repeat(args: argparse.Namespace) -> int:
    """Run the scenario over ``--seeds`` seeds and summarise; 1 when a seed failed."""
    from rich.console import Console

    from fedrobust.commands.preflight import preflight
    from fedrobust.commands.progress import progress_bar
    from fedrobust.report.metrics import write_json_atomic
    from fedrobust.report.summary import summarize, summary_markdown
    from fedrobust.scenario import load_scenario

    console = Console(highlight=False, soft_wrap=True)
    base = load_scenario(args.scenario, overrides(args))
    seeds = seed_list(base.seed, args.seeds)
    preflight(base)  # data problems stop here, exit 2, before any seed runs
    out = Path(args.out or f"runs/{base.name}-repeat").expanduser().resolve()
    console.print(
        f"[bold]{base.name}[/bold]: seeds {seeds[0]}..{seeds[-1]} "
        f"({len(seeds)} runs, {args.jobs} at a time) -> {out}"
    )

    results: dict[int, SeedResult] = {}
    commands: dict[int, tuple[list[str], Path]] = {}
    for seed in seeds:
        seed_dir = out / SEED_DIR.format(seed=seed)
        scenario = load_scenario(args.scenario, {**overrides(args), "seed": seed})
        final = completed_final(seed_dir, scenario)
        if final is not None:
            results[seed] = SeedResult(seed, final, None)
            console.print(f"seed {seed}: finished before, accuracy {final.get('accuracy')}")
        else:
            commands[seed] = (run_command(args.scenario, seed, seed_dir, args.rounds), seed_dir)

    def on_done(result: SeedResult) -> None:
        if result.error is not None:
            console.print(f"seed {result.seed}: failed: {result.error}", markup=False)
            return
        final = result.final or {}
        console.print(
            f"seed {result.seed}: accuracy {final.get('accuracy', float('nan')):.4f}  "
            f"loss {final.get('loss', float('nan')):.4f}  "
            f"{final.get('wall_seconds', float('nan')):.1f}s"
        )

    with progress_bar(console, len(commands), "seeds") as advance:
        count = 0

        def on_seed(result: SeedResult) -> None:
            nonlocal count
            count += 1
            on_done(result)
            advance(count)

        results.update(run_seeds(commands, args.jobs, on_seed))
    finals = {s: r.final for s, r in results.items() if r.final is not None}
    failed = {s: r.error or "failed" for s, r in sorted(results.items()) if r.final is None}
    summary = summarize(finals)
    command = reproduce_command(args)
    doc = {
        "scenario": base.name,
        "command": command,
        "seeds": seeds,
        "completed": sorted(finals),
        "failed": {str(s): error for s, error in failed.items()},
        "confidence": summary["confidence"],
        "figures": summary["figures"],
    }
    write_json_atomic(out / SUMMARY_JSON, doc)
    text = summary_markdown(summary, base.name, command, failed)
    (out / SUMMARY_MD).write_text(text, encoding="utf-8")
    console.print(text, markup=False)
    console.print(f"summary: {out / SUMMARY_MD}, {out / SUMMARY_JSON}")
    if failed:
        print(f"{len(failed)} of {len(seeds)} seeds failed: "
              + ", ".join(str(s) for s in failed), file=sys.stderr)  # fmt: skip
        return 1
    return 0
