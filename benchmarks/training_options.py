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


def compare(
    title: str, measure: str, key: str, base: tuple[str, dict[str, Any]],
    options: list[tuple[str, dict[str, Any]]], work: Path,
) -> list[tuple[str, str, str, str]]:  # fmt: skip
    """Run ``base`` and each option (federated); one row per option against the base."""
    base_label, base_extra = base
    ref = federated(f"{title}_{base_label}", base_extra, work)
    rows = []
    for label, extra in options:
        got = federated(f"{title}_{label}", merge(base_extra, extra), work)
        effect = f"{got[key] - ref[key]:+.4f}"
        if key != "loss":  # accuracy moves in steps of 1/360 on digits: show the loss too
            effect += f" (loss {got['loss']:.3f} vs {ref['loss']:.3f})"
        rows.append(
            (f"{title}: {label} vs {base_label}", measure, f"{got[key]:.4f} vs {ref[key]:.4f}",
             effect)
        )  # fmt: skip
    return rows


def extra_rows(work: Path) -> list[tuple[str, str, str, str]]:
    """Convergence and regularisation options, 15-round digits federations."""
    short = {"train": {"rounds": 15}}
    rows = []
    hot_sgd = {"name": "sgd", "lr": 0.5, "momentum": 0.9}
    hot = merge(short, {"model": {"hidden": [128, 128, 128]}, "train": {"optimizer": hot_sgd}})
    rows += compare("exploding (lr 0.5)", "test accuracy", "accuracy", ("no clip", hot),
                    [("grad_clip 1.0", {"train": {"grad_clip": 1.0}})], work)  # fmt: skip
    deep = merge(short, {"model": {"hidden": [64] * 8, "activation": "tanh"}})
    rows += compare("deep tanh MLP (8 layers)", "test accuracy", "accuracy", ("default init", deep),
                    [("xavier", {"model": {"init": "xavier"}}),
                     ("kaiming", {"model": {"init": "kaiming"}})], work)  # fmt: skip
    rows += compare("activation", "test accuracy", "accuracy", ("relu", short),
                    [("gelu", {"model": {"activation": "gelu"}}),
                     ("tanh", {"model": {"activation": "tanh"}})], work)  # fmt: skip
    small = merge(short, {"data": {"limited": {"max_samples": 30}},
                          "model": {"hidden": [512, 512]},
                          "train": {"local_epochs": 10, "optimizer": {"lr": 0.1}}})  # fmt: skip
    rows += compare("overfit (30 samples/client)", "test accuracy", "accuracy", ("plain", small),
                    [("dropout 0.5", {"model": {"dropout": 0.5}}),
                     ("L2 1e-3", {"train": {"optimizer": {"weight_decay": 0.001}}}),
                     ("L1 1e-5", {"train": {"l1": 0.00001}}),
                     ("augment shift+rotate", {"data": {"augment": [
                         {"name": "shift", "pixels": 1}, {"name": "rotate", "degrees": 10}]}})],
                    work)  # fmt: skip
    cnn = merge(short, {"model": {"name": "cnn"}})
    rows += compare("architecture", "test accuracy", "accuracy", ("cnn", cnn),
                    [("resnet", {"model": {"name": "resnet", "channels": [16, 16, 32, 32]}})],
                    work)  # fmt: skip
    rows += compare("inputs", "test accuracy", "accuracy", ("raw [0, 1]", short),
                    [("normalize", {"model": {"normalize": {"mean": [0.3], "std": [0.37]}}})],
                    work)  # fmt: skip
    rows += compare("optimizer", "test accuracy", "accuracy", ("sgd", short),
                    [("adam", {"train": {"optimizer": {"name": "adam", "lr": 0.003}}}),
                     ("adamw", {"train": {"optimizer": {"name": "adamw", "lr": 0.003}}}),
                     ("rmsprop", {"train": {"optimizer": {"name": "rmsprop", "lr": 0.001}}})],
                    work)  # fmt: skip
    fast = merge(short, {"train": {"optimizer": {"name": "sgd", "lr": 0.2, "momentum": 0.9}}})
    rows += compare("lr 0.2", "test loss", "loss", ("constant", fast),
                    [("cosine", {"train": {"lr_schedule": {"name": "cosine"}}}),
                     ("step", {"train": {"lr_schedule": {"name": "step", "step_rounds": 5}}})],
                    work)  # fmt: skip
    tail = merge(short, {"data": {"imbalance": {"ratio": 0.05}}})
    rows += compare("imbalance 0.05", "balanced accuracy", "balanced_accuracy", ("ce", tail),
                    [("focal", {"train": {"loss": {"name": "focal"}}})], work)  # fmt: skip
    noisy = merge(short, {"data": {"label_noise": {"kind": "pairflip", "rate": 0.3}}})
    rows += compare("30% pair-flip noise", "test accuracy", "accuracy", ("ce", noisy),
                    [("label_smoothing", {"train": {"loss": {"name": "label_smoothing"}}})],
                    work)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-federated", action="store_true")
    parser.add_argument(
        "--extra", action="store_true", help="also the convergence/regularisation rows (~15 min)"
    )
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

    if args.extra:
        with tempfile.TemporaryDirectory() as tmp:
            rows += extra_rows(Path(tmp))
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
