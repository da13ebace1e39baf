"""Non-IID algorithms and personalization side by side over seeds, on one split.

Arms: the scenario files ``benchmarks/scenarios/noniid/<split>_*.yaml`` (FedAvg first,
then FedProx, SCAFFOLD, FedDyn, FedNova, and FedAvg with each personalization method:
finetune, FedPer, FedRep, Ditto, FedBN), each through ``fedrobust repeat`` (seeds that
already completed are not run again). Splits: ``digits_pathological`` (3 classes per
client), ``digits_dirichlet`` (Dirichlet alpha 0.1), ``mnist_pathological``,
``mnist_dirichlet``.

Per arm, mean ± 95 % CI half-width over the seeds of:

- ``accuracy``: the global model on the server's test set (model selection: none, the
  last round's model; fedper/fedrep train no shared head, so their global figure is not
  a model anyone uses);
- ``clients: global``: the global model on each client's own test split (mean);
- ``clients: personal`` and ``worst 10 %``: each client's personal model on its own test
  split (personalization arms), mean over clients and the worst tenth's mean;
- ``rounds to 0.9``: the first round whose global test accuracy reaches 0.9 of the final
  one (personalization arms: of the round's personal mean);

and the paired difference from FedAvg, seed by seed (the same seed gives both arms the
same split, clients and initial model): global test accuracy for the client-drift arms,
the clients' personal mean minus FedAvg's global model on the same clients' test splits
for the personalization arms; mean ± 95 % CI of the differences, ``higher`` or ``lower``
only when that interval excludes 0, ``no measurable difference`` otherwise.

Run: ``.venv/bin/python benchmarks/noniid.py [--split digits_pathological] [--seeds 3]
[--jobs 3] [--arms fedavg,scaffold,...] [--out runs/bench_noniid]``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from compare import cell, judged, paired, repeat

from fedrobust.report.summary import figure_stats

ARMS = Path(__file__).resolve().parent / "scenarios" / "noniid"
SPLITS = ("digits_pathological", "digits_dirichlet", "mnist_pathological", "mnist_dirichlet")


def rounds_to(series: list[float], share: float = 0.9) -> int | None:
    """The first round (1-based) whose value reaches ``share`` of the last one."""
    if not series or series[-1] != series[-1]:
        return None
    target = share * series[-1]
    return next(i + 1 for i, value in enumerate(series) if value >= target)


def seed_rounds(run: Path, personal: bool) -> float | None:
    """``rounds_to`` of one seed's run directory (its metrics.json)."""
    rounds = json.loads((run / "metrics.json").read_text())["rounds"]
    if personal:
        series = [(r.get("personalized") or {}).get("mean", float("nan")) for r in rounds]
    else:
        series = [r["accuracy"] for r in rounds]
    found = rounds_to(series)
    return None if found is None else float(found)


def arm_row(path: Path, seeds: int, jobs: int, out: Path) -> dict[str, Any]:
    """Run (or complete) one arm; its figures' statistics over the seeds."""
    summary = repeat(path, seeds, jobs, out / path.stem)
    figures = summary["figures"]
    personal = "personalized.mean" in figures
    runs = sorted(p for p in (out / path.stem).glob("seed-*") if (p / "metrics.json").is_file())
    speeds = {i: v for i, run in enumerate(runs) if (v := seed_rounds(run, personal)) is not None}
    return {
        "accuracy": figures.get("accuracy"),
        "global_local": figures.get("global_local.mean"),
        "personal": figures.get("personalized.mean"),
        "worst": figures.get("personalized.worst_10pct"),
        "rounds": figure_stats(speeds) if speeds else None,
    }


def table(rows: dict[str, dict[str, Any]]) -> str:
    """The markdown table, FedAvg first."""
    head = ["arm", "accuracy", "clients: global", "clients: personal", "worst 10 %",
            "rounds to 0.9", "paired difference from fedavg", "verdict"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    names = list(rows)
    base = rows[names[0]]
    for name in names:
        row = rows[name]
        if name == names[0]:
            diff, what = None, "baseline"
        elif row["personal"] is not None:  # personal models vs FedAvg's global model
            diff = paired(row["personal"], base["global_local"])
            what = f"clients' accuracy {judged(diff)}"
        else:
            diff = paired(row["accuracy"], base["accuracy"])
            what = f"accuracy {judged(diff)}"
        cells = [cell(row[k]) for k in ("accuracy", "global_local", "personal", "worst", "rounds")]
        lines.append("| " + " | ".join([name, *cells, cell(diff), what]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=SPLITS, default="digits_pathological")
    parser.add_argument("--arms", default="", help="comma-separated arm names (default: all)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_noniid"))
    args = parser.parse_args()
    if args.seeds < 1 or args.jobs < 1:
        parser.error("--seeds and --jobs must be >= 1")
    files = sorted(ARMS.glob(f"{args.split}_*.yaml"))
    wanted = [a for a in args.arms.split(",") if a]
    names = {path: path.stem[len(args.split) + 1 :] for path in files}  # e.g. "2_scaffold"
    if wanted:
        unknown = sorted(set(wanted) - {n.split("_", 1)[1] for n in names.values()})
        if unknown:
            parser.error(f"unknown arms {unknown}")
        files = [
            p for p in files if names[p].split("_", 1)[1] in wanted or names[p].startswith("0_")
        ]
    rows: dict[str, dict[str, Any]] = {}
    for path in files:
        rows[names[path].split("_", 1)[1]] = arm_row(
            path, args.seeds, args.jobs, args.out / args.split
        )
        print(f"{path.stem}: done", file=sys.stderr, flush=True)
    print(table(rows))
    print(f"\nmean ± 95 % CI half-width (per-seed values) over {args.seeds} seeds; command:")
    print(" ".join(shlex.quote(a) for a in ["python", "benchmarks/noniid.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
