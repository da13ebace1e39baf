"""What the privacy protections stop: the same run attacked with no protection, DP-SGD at
epsilon 8 / 3 / 1, client-level DP and SecAgg+, side by side over seeds.

Arms: ``benchmarks/scenarios/privacy_attacks/*.yaml`` (no protection first), each through
``fedrobust repeat`` (seeds that already completed are not run again). Each run's server
records the updates of clients 0-4 in rounds 1-5 (under SecAgg+: each round's
aggregate, all it sees) and inverts them (Geiping et al. 2020); after the last round a
model user runs the loss-threshold and LiRA membership attacks on the final model
(``evaluation.privacy_attacks``).

Per arm, mean ± 95 % CI half-width over the seeds of: test accuracy, epsilon (the
mechanism's; ``-`` without DP), the reconstructions' PSNR (best match among the inputs
behind the update, averaged over images and updates; higher = more leaked) and SSIM,
the membership attacks' ROC AUC (0.5 = chance) and LiRA's TPR at 1 % FPR. The verdict
compares each arm's PSNR with the unprotected run's: ``lower`` only when the intervals do
not overlap, ``no measurable difference`` otherwise.

Run: ``.venv/bin/python benchmarks/privacy_attacks.py [--seeds 3] [--jobs 2]
[--arms 0_none,5_secagg] [--out runs/bench_privacy_attacks]``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from compare import cell, repeat, verdict

ARMS = Path(__file__).resolve().parent / "scenarios" / "privacy_attacks"
FIGURES = {
    "accuracy": "accuracy",
    "epsilon": "epsilon",
    "inversion PSNR (dB)": "privacy_attacks.inversion_psnr",
    "inversion SSIM": "privacy_attacks.inversion_ssim",
    "loss attack AUC": "privacy_attacks.membership_loss_auc",
    "LiRA AUC": "privacy_attacks.membership_lira_auc",
    "LiRA TPR at 1 % FPR": "privacy_attacks.membership_lira_tpr_at_1%_fpr",
}


def table(rows: dict[str, dict[str, Any]]) -> str:
    """The markdown table, the unprotected run first."""
    head = ["arm", *FIGURES, "PSNR vs no protection"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    names = list(rows)
    base = rows[names[0]]["figures"].get(FIGURES["inversion PSNR (dB)"])
    for i, name in enumerate(names):
        figures = rows[name]["figures"]
        stats = [figures.get(key) for key in FIGURES.values()]
        judged = (
            "baseline" if i == 0 else verdict(figures.get(FIGURES["inversion PSNR (dB)"]), base)
        )
        lines.append("| " + " | ".join([name, *map(cell, stats), judged]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--arms", help="comma-separated file stems (default: all)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_privacy_attacks"))
    args = parser.parse_args()
    paths = sorted(ARMS.glob("*.yaml"))
    if args.arms:
        wanted = [a.strip() for a in args.arms.split(",") if a.strip()]
        unknown = sorted(set(wanted) - {p.stem for p in paths})
        if unknown:
            parser.error(f"unknown arms {unknown}; known: {[p.stem for p in paths]}")
        paths = [p for p in paths if p.stem in wanted]
    if args.seeds < 1 or args.jobs < 1:
        parser.error("--seeds and --jobs must be >= 1")
    rows = {}
    for path in paths:
        rows[path.stem] = repeat(path, args.seeds, args.jobs, args.out / path.stem)
        print(f"{path.stem}: done", file=sys.stderr, flush=True)
    print(table(rows))
    print(f"\nmean ± 95 % CI half-width (per-seed values) over {args.seeds} seeds; command:")
    print(
        " ".join(shlex.quote(a) for a in ["python", "benchmarks/privacy_attacks.py", *sys.argv[1:]])
    )


if __name__ == "__main__":
    main()
