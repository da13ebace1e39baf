"""Every eps-bounded torchattacks attack, by lower-case name.

The registry is read from torchattacks itself: each ``Attack`` subclass whose
constructor takes ``eps`` (FGSM, PGD, PGDL2, FFGSM, APGD, AutoAttack, Square, ...). An
attack is built for a model, a budget and a step count; the other parameters get the
usual defaults: step size ``2.5 * eps / steps`` (Madry et al.), the scenario's norm and
class count, a fixed seed. Inputs are images in [0, 1]; models normalise inside
(``model.normalize``), so attacks need no ``set_normalization_used``.

Croce & Hein 2020 (AutoAttack), https://arxiv.org/abs/2003.01690; torchattacks,
https://github.com/Harry24k/adversarial-attacks-pytorch
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

import torchattacks
from torch import nn
from torchattacks.attack import Attack

logging.getLogger("torchattacks").setLevel(logging.WARNING)


@functools.cache
def _registry() -> dict[str, type[Attack]]:
    found: dict[str, type[Attack]] = {}
    for name in dir(torchattacks):
        cls = getattr(torchattacks, name)
        if inspect.isclass(cls) and issubclass(cls, Attack) and cls is not Attack:
            if "eps" in inspect.signature(cls.__init__).parameters:
                found[name.lower()] = cls
    return dict(sorted(found.items()))


def known_attacks() -> list[str]:
    """Names of the supported (eps-bounded) torchattacks attacks."""
    return list(_registry())


def check_attack_name(name: str) -> None:
    """Raise ValueError naming the supported attacks if ``name`` is not one."""
    if name not in _registry():
        raise ValueError(f"unknown attack '{name}'; known: {', '.join(known_attacks())}")


def create_attack(
    name: str,
    model: nn.Module,
    eps: float,
    steps: int = 10,
    alpha: float | None = None,
    norm: str = "linf",
    num_classes: int = 10,
    seed: int = 0,
) -> Attack:
    """The attack ``name`` on ``model`` with budget ``eps``.

    Parameters
    ----------
    name : str
        Lower-case torchattacks class name (``pgd``, ``fgsm``, ``autoattack``, ...).
    model : nn.Module
        Maps [0, 1] inputs to logits.
    eps : float
        Budget in input units, in (0, 1].
    steps : int
        Iterations, for iterative attacks.
    alpha : float, optional
        Step size (default ``2.5 * eps / steps``).
    norm : str
        linf | l2, for attacks that take a norm.
    num_classes : int
        For attacks that need the class count (AutoAttack, APGDT, FAB).
    seed : int
        For attacks with their own random restarts.
    """
    check_attack_name(name)
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1] (inputs are [0, 1] images), got {eps}")
    cls = _registry()[name]
    params = inspect.signature(cls.__init__).parameters
    options: dict[str, Any] = {"eps": eps}
    wanted = {
        "steps": steps,
        "alpha": alpha if alpha is not None else 2.5 * eps / steps,
        "norm": "Linf" if norm == "linf" else "L2",
        "n_classes": num_classes,
        "seed": seed,
    }
    options.update({k: v for k, v in wanted.items() if k in params})
    return cls(model, **options)
