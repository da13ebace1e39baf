"""Adversarial training in federated learning: clean and robust accuracy, and what it costs.

For each training method (none, fgsm_rs, pgd_at, trades), with DP-SGD off and on
(trades is refused under DP: its second forward pass breaks per-example clipping),
a real Flower simulation on mnist-5k (10 clients, Dirichlet 0.5, the GroupNorm CNN)
trains with adversarial budget ``--train-eps``; the final global model is then
evaluated clean, and under PGD-20 and APGD-CE (20 steps) at eps 0.1 / 0.2 / 0.3 on
``--eval-samples`` test examples; with ``--autoattack-samples N`` also under AutoAttack
(standard: APGD-CE, APGD-T, FAB-T, Square), which takes tens of minutes per model on
this CPU. The last column is the run's wall time relative to plain training.

The anchor is Madry et al. 2018: 89 % PGD accuracy at eps 0.3 on full MNIST
(60,000 images, a wider network, 100k steps). Here each client holds ~400 images.

Run: ``.venv/bin/python benchmarks/adversarial.py [--rounds 10] [--train-eps 0.3]
[--train-steps 5] [--eval-samples 300] [--autoattack-samples 50] [--skip-dp]`` (about an
hour on 2 cores with the defaults). This script runs every row once, with seed 0: its
figures are single-seed.

Over seeds: the four non-DP rows (``--train-eps 0.2``, the README's settings) are also
scenario files, ``benchmarks/scenarios/adversarial/{0_none,1_fgsm_rs,2_pgd_at,3_trades}.yaml``,
whose ``adversarial.evaluation`` has the run itself attack its final model (PGD and APGD,
20 steps, eps 0.1 / 0.2 / 0.3, a seeded 300 of the test images; keys in ``final``:
``robust_accuracy.<attack>@<eps>``, ``worst@<eps>``, ``clean@subset``). Measure them as
mean ± 95 % CI over 3 seeds with::

    python benchmarks/compare.py benchmarks/scenarios/adversarial/*.yaml \\
        --figures accuracy,robust_accuracy.pgd@0.1,robust_accuracy.pgd@0.2,\\
robust_accuracy.pgd@0.3,robust_accuracy.apgd@0.1,robust_accuracy.apgd@0.2,\\
robust_accuracy.apgd@0.3,robust_accuracy.worst@0.1,robust_accuracy.worst@0.2,\\
robust_accuracy.worst@0.3,robust_accuracy.clean@subset --seeds 3

(the ``--figures`` value is one word: no spaces). The DP rows exist only here, single-seed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml

from fedrobust.adversarial.evaluation import attack_subset, robust_accuracy
from fedrobust.data import build_federation
from fedrobust.models.build import build_model
from fedrobust.scenario import parse_scenario
from fedrobust.simulation import run_simulation
from fedrobust.train import evaluate

EVAL_EPS = [0.1, 0.2, 0.3]


def scenario(
    name: str, method: str, dp: bool, rounds: int, train_eps: float, train_steps: int
) -> dict[str, Any]:
    training: dict[str, Any] = {"method": method}
    if method != "none":
        training.update(eps=train_eps, start_round=3)
        if method in ("pgd_at", "trades"):
            training["steps"] = train_steps
    raw: dict[str, Any] = {
        "name": name,
        "seed": 0,
        "data": {"dataset": "mnist-5k",
                 "partition": {"kind": "dirichlet", "num_clients": 10, "alpha": 0.5}},
        "model": {"name": "cnn"},
        "train": {"rounds": rounds, "batch_size": 32,
                  "optimizer": {"name": "sgd", "lr": 0.02, "momentum": 0.9}},
        "adversarial": {"training": training},
    }  # fmt: skip
    if dp:
        raw["train"]["optimizer"] = {"name": "adam", "lr": 0.003}
        raw["privacy"] = {"dp": {"mode": "sample", "target_epsilon": 8.0, "delta": 1e-5}}
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--train-eps", type=float, default=0.3)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--eval-samples", type=int, default=300)
    parser.add_argument(
        "--autoattack-samples", type=int, default=0,
        help="also AutoAttack (standard) on this many examples; 0 skips it (slow on CPU)",
    )  # fmt: skip
    parser.add_argument("--skip-dp", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    plain_seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for dp in (False,) if args.skip_dp else (False, True):
            for method in ("none", "fgsm_rs", "pgd_at", "trades"):
                if dp and method == "trades":
                    continue
                name = f"adv_{method}_{'dp' if dp else 'plain'}"
                raw = scenario(name, method, dp, args.rounds, args.train_eps, args.train_steps)
                path = work / f"{name}.yaml"
                path.write_text(yaml.safe_dump(raw))
                sc = parse_scenario(raw)
                start = time.perf_counter()
                doc = run_simulation(path, sc, work / name)
                seconds = time.perf_counter() - start
                plain_seconds.setdefault(dp, seconds)
                fed = build_federation(sc.data, sc.seed)
                model = build_model(sc.model, fed.spec)
                model.load_state_dict(torch.load(work / name / "model.pt", weights_only=True))
                pgd = robust_accuracy(model, fed.x_test, fed.y_test, ["pgd", "apgd"], EVAL_EPS,
                                      steps=20, num_samples=args.eval_samples)  # fmt: skip
                auto: dict[str, float] = {}
                if args.autoattack_samples:
                    auto = robust_accuracy(
                        model, fed.x_test, fed.y_test, ["autoattack"], EVAL_EPS,
                        num_samples=args.autoattack_samples,
                    )  # fmt: skip
                eps = f"{doc['final']['epsilon']:.2f}" if dp else "-"
                rows_attacked = attack_subset(len(fed.y_test), args.eval_samples, sc.seed)
                subset = evaluate(model, fed.x_test[rows_attacked], fed.y_test[rows_attacked],
                                  10).accuracy  # fmt: skip
                row = [method, eps, f"{doc['final']['accuracy']:.3f}", f"{subset:.3f}"]
                row += [f"{pgd[f'pgd@{e!r}']:.3f}" for e in EVAL_EPS]
                row += [f"{pgd[f'apgd@{e!r}']:.3f}" for e in EVAL_EPS]
                if auto:
                    row += [f"{auto[f'autoattack@{e!r}']:.3f}" for e in EVAL_EPS]
                row += [f"{seconds:.0f}", f"{seconds / plain_seconds[dp]:.1f}x"]
                rows.append(row)
                print(" | ".join(row), flush=True)
    header = ["method", "DP eps", "clean (test set)", "clean (attacked subset)"]
    header += [f"PGD-20@{e}" for e in EVAL_EPS]
    header += [f"APGD-20@{e}" for e in EVAL_EPS]
    header += [f"AA@{e}" for e in EVAL_EPS] if args.autoattack_samples else []
    header += ["s", "time vs none"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print()
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
