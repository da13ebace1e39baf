"""Robust accuracy of a model: accuracy on adversarial versions of test examples.

Figures are keyed ``"<attack>@<eps>"`` with eps as written in the scenario, e.g.
``{"pgd@0.1": 0.71, "fgsm@0.1": 0.80}``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchattacks.attack import Attack

from fedrobust.attacks import create_attack
from fedrobust.seeds import Stream, stream


def attack_key(name: str, eps: float) -> str:
    """``"pgd@0.1"``: the metric name of an attack at a budget."""
    return f"{name}@{eps!r}"


def attack_subset(num_examples: int, num_samples: int | None, seed: int) -> np.ndarray:
    """Indices of the examples to attack: all, or a seeded random subset in order.

    A random subset, not the first n: a test set may be sorted by class (mnist-5k's is).
    """
    if num_samples is None or num_samples >= num_examples:
        return np.arange(num_examples)
    chosen = stream(seed, Stream.HOLDOUT).permutation(num_examples)[:num_samples]
    return np.sort(chosen)


def robust_accuracy(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    attacks: list[str],
    eps: list[float],
    *,
    steps: int = 20,
    norm: str = "linf",
    num_samples: int | None = None,
    num_classes: int = 10,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, float]:
    """Accuracy of ``model`` under each attack at each budget.

    Parameters
    ----------
    model : nn.Module
        Maps [0, 1] inputs to logits.
    x, y : np.ndarray
        Test inputs and labels.
    attacks : list[str]
        Attack names (``fedrobust.attacks.known_attacks()``).
    eps : list[float]
        Budgets.
    steps : int
        Iterations of iterative attacks.
    norm : str
        linf | l2, for attacks that take a norm.
    num_samples : int, optional
        Attack a seeded random subset of ``num_samples`` examples (default: all).
    num_classes : int
        Number of classes.
    seed : int
        Seeds random starts, so an evaluation repeats exactly.
    batch_size : int
        Examples attacked at once.

    Raises
    ------
    ValueError
        When an attack cannot run on this data or model (e.g. one made for RGB images).
    """
    subset = attack_subset(len(y), num_samples, seed)
    n = len(subset)
    inputs, labels = torch.from_numpy(x[subset]), torch.from_numpy(y[subset])
    was_training = model.training
    model.eval()
    figures: dict[str, float] = {}
    try:
        with torch.random.fork_rng():  # the caller's RNG stream stays as it was
            for name in attacks:
                for budget in eps:
                    torch.manual_seed(seed)
                    attack = create_attack(name, model, budget, steps=steps, norm=norm,
                                           num_classes=num_classes, seed=seed)  # fmt: skip
                    correct = sum(
                        _correct(model, attack, name, inputs[i : i + batch_size],
                                 labels[i : i + batch_size])
                        for i in range(0, n, batch_size)
                    )  # fmt: skip
                    figures[attack_key(name, budget)] = correct / n
    finally:
        model.train(was_training)
    return figures


def _correct(model: nn.Module, attack: Attack, name: str, x: torch.Tensor, y: torch.Tensor) -> int:
    try:
        adv = attack(x, y)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise ValueError(f"attack '{name}' cannot run on this data: {exc}") from None
    with torch.no_grad():
        return int((model(adv).argmax(1) == y).sum())
