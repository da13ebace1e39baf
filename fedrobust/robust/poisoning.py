"""What a malicious client does on its own: poison its data, or the update it sends.

Data poisoning (label_flip, backdoor) changes the training set before local training;
update poisoning (sign_flip, gaussian, scaling, backdoor's boost) changes the trained
update. The colluding attacks that need the benign updates are in
:mod:`fedrobust.robust.collusion`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedrobust.robust.config import AttackConfig
from fedrobust.seeds import Stream, stream


def check_classes(cfg: AttackConfig, num_classes: int) -> None:
    """Refuse class ids the data does not have (``attack.flip_map``, ``attack.target_class``).

    Raises ``ValueError`` whose message starts with the field's dotted name.
    """
    if cfg.kind == "backdoor" and cfg.target_class >= num_classes:
        raise ValueError(f"attack.target_class: {cfg.target_class} >= {num_classes} classes")
    for src, dst in (cfg.flip_map or {}).items():
        if max(src, dst) >= num_classes:
            raise ValueError(f"attack.flip_map: {src}: {dst} names a class >= {num_classes}")


def flip_labels(cfg: AttackConfig, y: np.ndarray, num_classes: int) -> np.ndarray:
    """label_flip: ``flip_map`` (classes not in it keep their label), or ``K - 1 - y``."""
    if cfg.flip_map is None:
        return (num_classes - 1 - y).astype(y.dtype)
    table = np.arange(num_classes)
    for src, dst in cfg.flip_map.items():
        table[src] = dst
    return table[y].astype(y.dtype)


def stamp_trigger(cfg: AttackConfig, x: np.ndarray) -> np.ndarray:
    """A copy of ``x`` with the backdoor trigger written in.

    Images (N, C, H, W): a ``trigger_size`` square in the bottom-right corner of every
    channel. Sequences (N, T, F): the last ``trigger_size`` features of the last
    ``trigger_size`` steps (an image read by rows gets the image's square). Flat inputs
    (N, D): the last ``trigger_size`` features.
    """
    x = np.array(x, copy=True)
    s = cfg.trigger_size
    if x.ndim == 4:
        x[:, :, -s:, -s:] = cfg.trigger_value
    elif x.ndim == 3:
        x[:, -s:, -s:] = cfg.trigger_value
    else:
        x[..., -s:] = cfg.trigger_value
    return x


def backdoor_data(
    cfg: AttackConfig, x: np.ndarray, y: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stamp and relabel a seeded ``poison_fraction`` of the examples as ``target_class``."""
    rng = stream(seed, Stream.POISON_DATA)
    count = int(round(cfg.poison_fraction * len(y)))
    chosen = rng.choice(len(y), size=count, replace=False)
    x, y = np.array(x, copy=True), np.array(y, copy=True)
    x[chosen] = stamp_trigger(cfg, x[chosen])
    y[chosen] = cfg.target_class
    return x, y


def poison_data(
    cfg: AttackConfig, x: np.ndarray, y: np.ndarray, num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The training set a malicious client uses (unchanged for update-only attacks)."""
    if cfg.kind == "label_flip":
        return x, flip_labels(cfg, y, num_classes)
    if cfg.kind == "backdoor":
        return backdoor_data(cfg, x, y, seed)
    return x, y


def poison_update(cfg: AttackConfig, delta: np.ndarray, seed: int) -> np.ndarray:
    """The update a malicious client sends instead of its trained ``delta``.

    sign_flip: ``-scale * delta``; gaussian: N(0, noise_std^2) per coordinate;
    scaling and backdoor: ``scale * delta``; other kinds: ``delta`` unchanged.
    """
    if cfg.kind == "sign_flip":
        return -cfg.update_scale() * delta
    if cfg.kind == "gaussian":
        return stream(seed, Stream.POISON_NOISE).normal(0.0, cfg.noise_std, size=delta.shape)
    if cfg.kind in ("scaling", "backdoor"):
        return cfg.update_scale() * delta
    return delta


@torch.no_grad()
def backdoor_success(
    model: nn.Module, cfg: AttackConfig, x: np.ndarray, y: np.ndarray, batch_size: int = 512
) -> float:
    """Attack success rate: share of triggered test inputs not of the target class that
    the model classifies as ``target_class`` (Bagdasaryan et al. 2020)."""
    keep = y != cfg.target_class
    if not keep.any():
        return 0.0
    triggered = torch.as_tensor(stamp_trigger(cfg, x[keep]))
    model.eval()
    hits = 0
    for start in range(0, len(triggered), batch_size):
        logits = model(triggered[start : start + batch_size])
        hits += int((logits.argmax(1) == cfg.target_class).sum())
    return hits / len(triggered)
