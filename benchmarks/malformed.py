"""The chaos client's cost: scenarios/malformed.yaml beside the same run without attackers.

Runs the scenario with ``attack.kind: malformed`` (3 of 10 clients) and with no attack,
for ``--seeds`` seeds each (real Flower simulations through the CLI), and prints final
test accuracy as mean ± 95 % CI (Student t) with the per-seed values, the accuracy gap,
and the drop reasons the malformed runs counted.

Run: ``.venv/bin/python benchmarks/malformed.py [--seeds 3] [--out runs/bench_malformed]``
(about 6 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

from fedrobust.report.stats import format_ci, mean_ci, overlap

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "malformed.yaml"


def run(doc: dict, out: Path) -> dict:
    """Run one scenario document through the CLI; return its metrics.json."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "scenario.in.yaml"
    path.write_text(yaml.safe_dump(doc))
    cli = Path(sys.executable).parent / "fedrobust"
    subprocess.run([str(cli), "run", str(path), "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return json.loads((out / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_malformed"))
    args = parser.parse_args()
    base = yaml.safe_load(SCENARIO.read_text())
    accuracy: dict[str, list[float]] = {"clean": [], "malformed": []}
    reasons: dict[str, int] = {}
    for seed in range(args.seeds):
        for arm in accuracy:
            doc = json.loads(json.dumps(base)) | {"seed": seed, "name": f"malformed_{arm}"}
            if arm == "clean":
                doc.pop("attack")
            metrics = run(doc, args.out / f"{arm}-{seed}")
            accuracy[arm].append(metrics["final"]["accuracy"])
            if arm == "malformed":
                assert len(metrics["rounds"]) == base["train"]["rounds"]
                for row in metrics["rounds"]:
                    for reason, n in row["dropped"].items():
                        reasons[reason] = reasons.get(reason, 0) + n
    clean, chaos = mean_ci(accuracy["clean"]), mean_ci(accuracy["malformed"])
    print(f"command: python benchmarks/malformed.py --seeds {args.seeds}")
    print("| run | final test accuracy (mean ± 95% CI) | per seed |")
    print("| --- | --- | --- |")
    for arm, (mean, half) in (("no attack", clean), ("3 of 10 malformed", chaos)):
        values = accuracy["clean" if arm == "no attack" else "malformed"]
        print(f"| {arm} | {format_ci(mean, half)} | {', '.join(f'{v:.3f}' for v in values)} |")
    gap = clean[0] - chaos[0]
    verdict = "no measurable difference" if overlap(clean, chaos) else f"gap {gap:+.3f}"
    print(f"gap (clean - malformed): {gap:+.3f}: {verdict}")
    print("dropped, all malformed runs:", dict(sorted(reasons.items())))


if __name__ == "__main__":
    main()
