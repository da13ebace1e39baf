"""Measured effect of the training-toolkit options, each against its baseline.

Federated rows run real Flower simulations (`fedrobust.simulation.run_simulation`) on
scikit-learn digits, 10 clients, and compare final global test figures side by side:

- label noise 40 % symmetric, 40 rounds of 5 local epochs: cross-entropy vs GCE
  (q = 0.7) vs SCE;
- long-tail imbalance ratio 0.05: plain vs balanced class weights vs balanced sampler
  (balanced accuracy);
- early stopping on a run built to overfit (40 samples per client, 60 rounds).

Local rows time the training loop itself on mnist-5k shapes:

- bf16 autocast vs fp32: seconds per local epoch of the CNN, and bytes of activations
  saved for backward (bf16 halves them; speed depends on the CPU's bf16 support);
- gradient checkpointing: bytes of activations saved for backward by the resnet,
  counted exactly with autograd's saved-tensor hooks, and seconds per epoch.

Run: ``.venv/bin/python benchmarks/training_options.py`` (about 12 minutes on 2 cores).

The convergence and regularisation rows (formerly ``--extra``: digits, 10 clients, 15
rounds) are scenario files, one per arm, under ``benchmarks/scenarios/options/``, named
``<row>_<i>_<arm>.yaml`` with the baseline at ``i = 0``, and are measured over seeds
with ``benchmarks/compare.py``:

    python benchmarks/compare.py benchmarks/scenarios/options/<row>_*.yaml \\
        --figures <figures> --seeds 3

- ``gradclip`` (no clip vs ``grad_clip 1.0`` at SGD lr 0.5), ``init`` (default vs xavier
  vs kaiming, 8-layer tanh MLP), ``activation`` (relu vs gelu vs tanh), ``overfit``
  (30 samples per client: plain vs dropout, L2, L1, shift+rotate augmentation),
  ``optimizer`` (sgd vs adam, adamw, rmsprop), ``smoothing`` (cross-entropy vs label
  smoothing, 30 % pair-flip noise): ``--figures accuracy``;
- ``arch`` (cnn vs resnet), ``normalize`` (raw vs standardised inputs):
  ``--figures accuracy,loss``;
- ``lrschedule`` (constant vs cosine vs step, SGD lr 0.2): ``--figures loss,accuracy``;
- ``focal`` (cross-entropy vs focal loss, long tail 0.05):
  ``--figures balanced_accuracy,accuracy``.

Each file's header carries its row's exact command.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from fedrobust.models import InputSpec
from fedrobust.models.build import build_model
from fedrobust.scenario import ModelConfig, TrainConfig, parse_scenario
from fedrobust.simulation import run_simulation
from fedrobust.train import local_train

BASE: dict[str, Any] = {
    "seed": 0,
    "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 10}},
    "model": {"name": "mlp", "hidden": [64]},
    "train": {"rounds": 20, "batch_size": 16, "optimizer": {"name": "sgd", "lr": 0.05}},
}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def federated(name: str, extra: dict[str, Any], workdir: Path) -> dict[str, Any]:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)  # a valid scenario name and directory
    raw = merge(BASE, {"name": name, **extra})
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    scenario = parse_scenario(raw)
    doc = run_simulation(path, scenario, workdir / name)
    return doc["final"]


def local_seconds(model_cfg: ModelConfig, precision: str, epochs: int = 2) -> float:
    rng = np.random.default_rng(0)
    x = rng.random((2000, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 2000)
    torch.manual_seed(0)
    model = build_model(model_cfg, InputSpec((1, 28, 28), 10))
    train = TrainConfig(local_epochs=epochs, batch_size=64, precision=precision)
    start = time.perf_counter()
    local_train(model, x, y, train=train, num_classes=10, seed=0)
    return (time.perf_counter() - start) / epochs


def saved_activation_bytes(model_cfg: ModelConfig, precision: str = "fp32") -> int:
    torch.manual_seed(0)
    model = build_model(model_cfg, InputSpec((1, 28, 28), 10)).train()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        loss = model(torch.rand(64, 1, 28, 28)).float().sum()
    loss.backward()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-federated", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    if not args.skip_federated:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            # long enough local training (5 epochs x 40 rounds, wide MLP) for cross-entropy
            # to start memorising the wrong labels; the robust losses resist that
            noise = {
                "data": {"label_noise": {"kind": "symmetric", "rate": 0.4}},
                "model": {"name": "mlp", "hidden": [256, 256]},
                "train": {
                    "rounds": 40,
                    "local_epochs": 5,
                    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
                },
            }
            ce = federated("noise_ce", noise, work)
            for loss in ({"name": "gce", "q": 0.7}, {"name": "sce"}):
                other = federated(
                    f"noise_{loss['name']}", merge(noise, {"train": {"loss": loss}}), work
                )
                rows.append(
                    (f"40% label noise: {loss['name']} vs cross_entropy", "test accuracy",
                     f"{other['accuracy']:.4f} vs {ce['accuracy']:.4f}",
                     f"{other['accuracy'] - ce['accuracy']:+.4f}")
                )  # fmt: skip
            tail = {"data": {"imbalance": {"ratio": 0.05}}}
            plain = federated("tail_plain", tail, work)
            for option in ({"class_weights": "balanced"}, {"sampler": "balanced"}):
                label = next(iter(option))
                other = federated(f"tail_{label}", merge(tail, {"train": option}), work)
                rows.append(
                    (f"imbalance 0.05: {label}=balanced vs none", "balanced accuracy",
                     f"{other['balanced_accuracy']:.4f} vs {plain['balanced_accuracy']:.4f}",
                     f"{other['balanced_accuracy'] - plain['balanced_accuracy']:+.4f}")
                )  # fmt: skip
            overfit = {
                "data": {"limited": {"max_samples": 40}},
                "model": {"name": "mlp", "hidden": [256, 256]},
                "train": {
                    "rounds": 60,
                    "local_epochs": 5,
                    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
                    "early_stopping": {"metric": "loss", "patience": 5},
                },
            }
            stop = federated("early_stop", overfit, work)
            rows.append(
                ("early stopping (val loss, patience 5), 60-round overfit",
                 "rounds run / kept round",
                 f"{stop['rounds_completed']} / {stop['model_round']}",
                 f"kept model's test loss {stop['loss']:.4f}, best val loss "
                 f"{stop['best_val_loss']:.4f}")
            )  # fmt: skip

    cnn = ModelConfig(name="cnn")
    fp32, bf16 = local_seconds(cnn, "fp32"), local_seconds(cnn, "bf16")
    rows.append(("bf16 vs fp32 (cnn, mnist shape)", "s / local epoch",
                 f"{bf16:.3f} vs {fp32:.3f}", f"ratio {bf16 / fp32:.2f}"))  # fmt: skip
    mem32, mem16 = saved_activation_bytes(cnn, "fp32"), saved_activation_bytes(cnn, "bf16")
    rows.append(("bf16 vs fp32 (cnn, batch 64)", "activation MB saved for backward",
                 f"{mem16 / 2**20:.1f} vs {mem32 / 2**20:.1f}",
                 f"ratio {mem16 / mem32:.2f}"))  # fmt: skip
    plain_net = ModelConfig(name="resnet")
    ckpt_net = ModelConfig(name="resnet", checkpointing=True)
    mem_plain, mem_ckpt = saved_activation_bytes(plain_net), saved_activation_bytes(ckpt_net)
    rows.append(("gradient checkpointing (resnet, batch 64)", "activation MB saved for backward",
                 f"{mem_ckpt / 2**20:.1f} vs {mem_plain / 2**20:.1f}",
                 f"ratio {mem_ckpt / mem_plain:.2f}"))  # fmt: skip
    t_plain, t_ckpt = local_seconds(plain_net, "fp32", 1), local_seconds(ckpt_net, "fp32", 1)
    rows.append(("gradient checkpointing (resnet)", "s / local epoch",
                 f"{t_ckpt:.2f} vs {t_plain:.2f}", f"ratio {t_ckpt / t_plain:.2f}"))  # fmt: skip

    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    header = ("option vs baseline", "measure", "option vs baseline", "effect")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
