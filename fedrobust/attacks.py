"""Every eps-bounded torchattacks attack, by lower-case name.

The registry is read from torchattacks itself: each ``Attack`` subclass whose
constructor takes ``eps`` (FGSM, PGD, PGDL2, FFGSM, APGD, AutoAttack, Square, ...). An
attack is built for a model, a budget and a step count; the other parameters get the
usual defaults: step size ``2.5 * eps / steps`` (Madry et al.), the scenario's norm and
class count, a fixed seed. Inputs are images in [0, 1]; models normalise inside
(``model.normalize``), so attacks need no ``set_normalization_used``.

The norm is honoured, never ignored: attacks whose constructor takes ``norm`` (APGD,
APGDT, AutoAttack, FAB, Square) get it; ``pgd`` and ``pgdrs`` run as their L2 classes
(``PGDL2``, ``PGDRSL2``) under ``norm: l2``; the L2-only classes need ``norm: l2``; every
other attack (FGSM, BIM, MIFGSM, ...) is L-infinity only and is refused under ``l2``
(:func:`check_attack_norm`).

Croce & Hein 2020 (AutoAttack), https://arxiv.org/abs/2003.01690; torchattacks,
https://github.com/Harry24k/adversarial-attacks-pytorch
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import TYPE_CHECKING, Any

from torch import nn

from fedrobust.extras import require

if TYPE_CHECKING:
    from torchattacks.attack import Attack

logging.getLogger("torchattacks").setLevel(logging.WARNING)


@functools.cache
def _registry() -> dict[str, type[Attack]]:
    require("adversarial attacks (torchattacks)", "torchattacks")
    import torchattacks  # ~0.1 s and more: only where an attack is named
    from torchattacks.attack import Attack

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


#: Attacks whose L2 variant is a separate torchattacks class.
L2_VARIANTS: dict[str, str] = {"pgd": "pgdl2", "pgdrs": "pgdrsl2"}


def attack_norms(name: str) -> set[str]:
    """The norms (``linf``, ``l2``) the attack ``name`` can run under.

    Parameters
    ----------
    name : str
        A known attack (``known_attacks()``).
    """
    check_attack_name(name)
    if "norm" in inspect.signature(_registry()[name].__init__).parameters:
        return {"linf", "l2"}
    if name in L2_VARIANTS:
        return {"linf", "l2"}
    if name in L2_VARIANTS.values():
        return {"l2"}
    return {"linf"}


def without_norm(names: list[str], norm: str) -> list[str]:
    """The attacks of ``names`` that have no variant for ``norm`` (in order)."""
    return [name for name in names if norm not in attack_norms(name)]


def check_attack_norm(name: str, norm: str) -> None:
    """Raise ValueError if the attack ``name`` cannot run under ``norm``."""
    if norm not in attack_norms(name):
        kind = "L2" if norm == "l2" else "L-infinity"
        raise ValueError(f"attack '{name}' has no {kind} variant in torchattacks")


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
        linf | l2: passed to attacks that take a norm; ``pgd`` / ``pgdrs`` run as
        ``PGDL2`` / ``PGDRSL2`` under l2.
    num_classes : int
        For attacks that need the class count (AutoAttack, APGDT, FAB).
    seed : int
        For attacks with their own random restarts.

    Raises
    ------
    ValueError
        For an unknown attack, an eps outside (0, 1], or a norm the attack has no
        variant for (e.g. ``fgsm`` under l2).
    """
    check_attack_norm(name, norm)
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1] (inputs are [0, 1] images), got {eps}")
    if norm == "l2":
        name = L2_VARIANTS.get(name, name)
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
