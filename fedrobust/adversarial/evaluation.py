"""Robust accuracy of a model: accuracy on adversarial versions of test examples.

Figures are keyed ``"<attack>@<eps>"`` with eps as written in the scenario, e.g.
``{"pgd@0.1": 0.71, "fgsm@0.1": 0.80, "worst@0.1": 0.70, "clean@subset": 0.93}``.

An example counts as robust to an attack only if the model classifies it correctly
both clean and attacked, so robust accuracy is never above clean accuracy.
``worst@<eps>`` is the per-example worst case over every attack run at that eps (an
example counts only if it resisted all of them, as AutoAttack reports its ensemble:
Croce & Hein 2020, https://arxiv.org/abs/2003.01690), so it is never above any single
attack's figure. ``clean@subset`` is the clean accuracy on the attacked examples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from fedrobust.attacks import create_attack
from fedrobust.seeds import Stream, stream
from fedrobust.train.device import current_device, model_device, to_device

if TYPE_CHECKING:
    from torchattacks.attack import Attack


def attack_key(name: str, eps: float) -> str:
    """``"pgd@0.1"``: the metric name of an attack at a budget."""
    return f"{name}@{eps!r}"


#: The key of the clean accuracy on the attacked subset.
CLEAN_KEY = "clean@subset"
#: The name of the per-example worst case over the attacks at one eps.
WORST = "worst"
#: Test sets up to this size are attacked whole by default; larger ones by a seeded
#: subset of this size.
DEFAULT_MAX_SAMPLES = 1000


def default_num_samples(num_examples: int, num_samples: int | None) -> int:
    """``num_samples``, or by default the whole test set up to ``DEFAULT_MAX_SAMPLES``."""
    if num_samples is not None:
        return min(num_samples, num_examples)
    return min(num_examples, DEFAULT_MAX_SAMPLES)


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
    on_attack: Callable[[int], None] | None = None,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Accuracy of ``model`` under each attack at each budget, their worst case per
    budget, and the clean accuracy of the attacked examples.

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
        linf | l2; every attack runs under it (``pgd`` as ``PGDL2`` under l2).
    num_samples : int, optional
        Attack a seeded random subset of ``num_samples`` examples (default: the whole
        test set up to ``DEFAULT_MAX_SAMPLES`` examples, else a subset of that size).
    num_classes : int
        Number of classes.
    seed : int
        Seeds random starts, so an evaluation repeats exactly.
    batch_size : int
        Examples attacked at once.
    on_attack : callable, optional
        Called with the number of (attack, budget) pairs done after each one (a
        progress bar).
    device : torch.device, optional
        Where the model and the attacks run (default: this process's
        :func:`~fedrobust.train.device.current_device`); the model returns where it was.

    Returns
    -------
    dict[str, float]
        ``"<attack>@<eps>"``: share of the subset classified correctly both clean and
        under the attack; ``"worst@<eps>"``: share that resisted every attack at that eps;
        ``"clean@subset"``: clean accuracy on the subset.

    Raises
    ------
    ValueError
        When an attack cannot run on this data or model (e.g. one made for RGB images),
        or has no variant for ``norm``.
    """
    subset = attack_subset(len(y), default_num_samples(len(y), num_samples), seed)
    n = len(subset)
    inputs, labels = torch.from_numpy(x[subset]), torch.from_numpy(y[subset])
    was_training = model.training
    model.eval()
    figures: dict[str, float] = {}
    device = current_device() if device is None else device
    home = model_device(model)
    model.to(device)  # torchattacks crafts on the model's device
    try:
        clean = _predicted_right(model, inputs, labels, batch_size)
        with torch.random.fork_rng():  # the caller's RNG stream stays as it was
            eps_done: list[float] = []
            for budget in eps:
                survived = clean.copy()  # robust to every attack so far at this budget
                for name in attacks:
                    torch.manual_seed(seed)
                    attack = create_attack(name, model, budget, steps=steps, norm=norm,
                                           num_classes=num_classes, seed=seed)  # fmt: skip
                    right = np.concatenate([
                        _attacked_right(model, attack, name, inputs[i : i + batch_size],
                                        labels[i : i + batch_size])
                        for i in range(0, n, batch_size)
                    ])  # fmt: skip
                    robust = clean & right
                    survived &= robust
                    figures[attack_key(name, budget)] = float(robust.sum()) / n
                    if on_attack is not None:
                        on_attack(len(eps_done) * len(attacks) + attacks.index(name) + 1)
                figures[attack_key(WORST, budget)] = float(survived.sum()) / n
                eps_done.append(budget)
        figures[CLEAN_KEY] = float(clean.sum()) / n
    finally:
        model.to(home)
        model.train(was_training)
    return figures


def _predicted_right(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> np.ndarray:
    """Per example: whether ``model`` classifies the clean input correctly."""
    device = model_device(model)
    with torch.no_grad():
        return np.concatenate([
            (model(to_device(x[i : i + batch_size], device)).argmax(1).cpu()
             == y[i : i + batch_size]).numpy()
            for i in range(0, len(y), batch_size)
        ])  # fmt: skip


def _attacked_right(
    model: nn.Module, attack: Attack, name: str, x: torch.Tensor, y: torch.Tensor
) -> np.ndarray:
    """Per example: whether ``model`` classifies the attacked input correctly."""
    try:
        adv = attack(x, y)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise ValueError(f"attack '{name}' cannot run on this data: {exc}") from None
    with torch.no_grad():
        return (model(adv).argmax(1).cpu() == y).numpy()
