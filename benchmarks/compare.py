"""Arms side by side over seeds: each scenario file through ``fedrobust repeat``, one table.

Every scenario file is one arm (the first is the baseline). Each runs with ``--seeds N``
through ``fedrobust repeat`` into ``OUT/<file stem>/`` (seeds that already completed are
not run again), and the table shows, per arm and figure, the mean ± half-width of the
95 % Student-t interval, the per-seed values, and how the arm's first figure compares
with the baseline's: ``higher`` or ``lower`` only when the intervals do not overlap,
``no measurable difference`` otherwise. Arms run on the same seeds, so the last column
also compares them seed by seed: the mean and 95 % interval of the per-seed difference
from the baseline, ``higher`` / ``lower`` only when that interval excludes 0.

Figures are the dotted keys of ``final`` in ``summary.json`` (``accuracy``,
``balanced_accuracy``, ``continual.average_accuracy``, ``robust_accuracy.pgd@0.1``, ...).

Run: ``.venv/bin/python benchmarks/compare.py SCENARIO.yaml [SCENARIO.yaml ...]
--figures accuracy[,loss] [--seeds 3] [--jobs 2] [--out runs/bench_compare]``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from fedrobust.report.stats import overlap
from fedrobust.report.summary import figure_stats


def repeat(scenario: Path, seeds: int, jobs: int, out: Path) -> dict[str, Any]:
    """Run (or complete) ``fedrobust repeat`` for one arm; its ``summary.json``."""
    command = [sys.executable, "-m", "fedrobust.cli", "repeat", str(scenario),
               "--seeds", str(seeds), "--jobs", str(jobs), "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, check=False, stdout=subprocess.DEVNULL)
    summary = out / "summary.json"
    if not summary.exists():
        raise SystemExit(f"{scenario}: fedrobust repeat exited {done.returncode}, no summary")
    if done.returncode != 0:
        print(f"warning: {scenario}: some seeds failed (see {out})", file=sys.stderr)
    return json.loads(summary.read_text())


def cell(stats: dict[str, Any] | None) -> str:
    """``mean ± half (v1, v2, ...)`` for one figure, ``-`` when the arm lacks it."""
    if stats is None:
        return "-"
    values = ", ".join(f"{v:.3f}" for v in stats["values"].values())
    if stats["half_width"] is None:
        return f"{stats['mean']:.3f} ({values})"
    return f"{stats['mean']:.3f} ± {stats['half_width']:.3f} ({values})"


def verdict(arm: dict[str, Any] | None, base: dict[str, Any] | None) -> str:
    """How ``arm`` compares with ``base`` on one figure, judged by their intervals."""
    if arm is None or base is None or arm["half_width"] is None or base["half_width"] is None:
        return "-"
    a, b = (arm["mean"], arm["half_width"]), (base["mean"], base["half_width"])
    if overlap(a, b):
        return "no measurable difference"
    return "higher" if a[0] > b[0] else "lower"


def paired(arm: dict[str, Any] | None, base: dict[str, Any] | None) -> dict[str, Any] | None:
    """Statistics of ``arm - base`` over the seeds both have (``figure_stats`` of the
    per-seed differences)."""
    if arm is None or base is None:
        return None
    seeds = sorted(set(arm["values"]) & set(base["values"]))
    if not seeds:
        return None
    return figure_stats({s: arm["values"][s] - base["values"][s] for s in seeds})


def judged(diff: dict[str, Any] | None) -> str:
    """``higher`` / ``lower`` when the difference's interval excludes 0."""
    if diff is None or diff["ci"] is None:
        return "-"
    low, high = diff["ci"]
    return "higher" if low > 0 else "lower" if high < 0 else "no measurable difference"


def paired_cell(diff: dict[str, Any] | None) -> str:
    """``+mean ± half: verdict`` of a paired difference."""
    if diff is None or diff["half_width"] is None:
        return "-"
    return f"{diff['mean']:+.3f} ± {diff['half_width']:.3f}: {judged(diff)}"


def table(names: list[str], summaries: list[dict[str, Any]], figures: list[str]) -> str:
    """The markdown table: one row per arm, one column per figure, then the verdicts
    on the first figure: by interval overlap, and by the paired per-seed difference."""
    first = figures[0]
    head = ["arm", *figures, f"{first} vs {names[0]}", f"paired difference in {first}"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    base = summaries[0]["figures"].get(first)
    for i, (name, summary) in enumerate(zip(names, summaries, strict=True)):
        stats = [summary["figures"].get(f) for f in figures]
        if i == 0:
            verdicts = ["baseline", "baseline"]
        else:
            verdicts = [verdict(stats[0], base), paired_cell(paired(stats[0], base))]
        lines.append("| " + " | ".join([name, *map(cell, stats), *verdicts]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="+", type=Path, help="one YAML per arm, baseline first")
    parser.add_argument("--figures", required=True, help="comma-separated dotted final keys")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_compare"))
    args = parser.parse_args()
    figures = [f for f in args.figures.split(",") if f]
    missing = [str(p) for p in args.scenarios if not p.is_file()]
    if missing or not figures or args.seeds < 1 or args.jobs < 1:
        parser.error(f"missing scenario files: {missing}" if missing else "bad --figures/--seeds")
    summaries = []
    for path in args.scenarios:
        summaries.append(repeat(path, args.seeds, args.jobs, args.out / path.stem))
        print(f"{path.stem}: done", file=sys.stderr, flush=True)
    names = [p.stem for p in args.scenarios]
    print(table(names, summaries, figures))
    print(f"\nmean ± 95 % CI half-width (per-seed values) over {args.seeds} seeds; command:")
    print(" ".join(shlex.quote(a) for a in ["python", "benchmarks/compare.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
