"""Transfer learning: start from pre-trained weights, freeze layers, reset the head.

- :func:`load_pretrained` copies every tensor of a run directory's ``model.pt`` (or of a
  ``.pt`` state dict) whose name and shape match the model, and reports the rest.
- :func:`freeze` turns off ``requires_grad`` for parameters under module prefixes. It is
  structural: :func:`~fedrobust.models.build.build_model` applies ``model.freeze``, so
  every copy of the model (the server's, each client's, FLTrust's root model) freezes
  the same parameters, and no optimizer, penalty or DP-SGD step sees their gradients.
- :func:`reset_head` re-initialises the classifier (the last ``nn.Linear``, :func:`head_layer`),
  seeded.
- :func:`initial_model` builds the server's initial global model with all three;
  :func:`keep_frozen` keeps the frozen parameters of the global model as they are when
  the aggregate arrives (server-side noise, adaptive optimizers or float rounding of
  the average cannot move them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from fedrobust.errors import FedrobustError

if TYPE_CHECKING:
    pass

WHERE = "model.init_from"


@dataclass(frozen=True)
class TransferReport:
    """What :func:`load_pretrained` copied and what it left.

    Attributes
    ----------
    source : str
        The file the weights came from.
    loaded : list[str]
        State-dict keys copied (name and shape matched).
    skipped : dict[str, tuple[list[int], list[int]]]
        Keys in both with different shapes: ``(source shape, model shape)``.
    missing : list[str]
        Model keys the source does not have (they keep their fresh initialisation).
    unused : list[str]
        Source keys the model does not have.
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The report as metrics.json keeps it."""
        return {
            "init_from": self.source,
            "loaded": len(self.loaded),
            "skipped": [f"{k} {list(a)} -> {list(b)}" for k, (a, b) in self.skipped.items()],
            "missing": list(self.missing),
            "unused": list(self.unused),
        }


def source_file(source: str | Path) -> Path:
    """The state-dict file ``source`` names: a run directory's ``model.pt``, or the file.

    Raises
    ------
    FedrobustError
        Naming ``model.init_from`` when neither exists.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / "model.pt"
        if not path.is_file():
            raise FedrobustError(WHERE, f"the run directory {source} has no model.pt")
    elif not path.is_file():
        raise FedrobustError(WHERE, f"no such run directory or file: {source}")
    return path


def load_pretrained(model: nn.Module, source: str | Path) -> TransferReport:
    """Copy into ``model`` every tensor of ``source`` whose name and shape match.

    Parameters
    ----------
    model : nn.Module
        The freshly built model (updated in place).
    source : str or Path
        A run directory (its ``model.pt``) or a ``.pt`` state dict.

    Returns
    -------
    TransferReport
        Loaded, skipped-for-shape, missing and unused keys.

    Raises
    ------
    FedrobustError
        Naming ``model.init_from``: no such file, not a state dict, or nothing matches.
    """
    path = source_file(source)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input
        raise FedrobustError(WHERE, f"cannot read {path} as a state dict: {exc}") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise FedrobustError(WHERE, f"{path} does not hold a state dict (name -> tensor)")
    own = model.state_dict()
    report = TransferReport(source=str(path))
    matched: dict[str, torch.Tensor] = {}
    for key, tensor in own.items():
        if key not in state:
            report.missing.append(key)
        elif state[key].shape != tensor.shape:
            report.skipped[key] = (list(state[key].shape), list(tensor.shape))
        else:
            matched[key] = state[key].to(tensor.dtype)
            report.loaded.append(key)
    report.unused.extend(k for k in state if k not in own)
    if not any(own[k].is_floating_point() for k in matched):
        raise FedrobustError(
            WHERE,
            f"no weight of {path} matches this model by name and shape "
            f"(model keys: {', '.join(list(own)[:4])}, ...; file keys: "
            f"{', '.join(list(state)[:4])}, ...)",
        )
    model.load_state_dict(matched, strict=False)
    return report


def freeze(model: nn.Module, prefixes: list[str]) -> int:
    """Stop training the parameters whose name starts with any of ``prefixes``.

    A prefix matches whole name parts: ``features`` freezes ``features.0.weight`` but
    not ``features_extra.weight``.

    Returns
    -------
    int
        The number of frozen parameter values (elements).

    Raises
    ------
    FedrobustError
        Naming ``model.freeze``: a prefix that matches no parameter (the message lists
        the model's top-level modules), or prefixes that freeze every parameter.
    """
    named = dict(model.named_parameters())
    for prefix in prefixes:
        if not any(_under(name, prefix) for name in named):
            tops = sorted({name.split(".")[0] for name in named})
            raise FedrobustError(
                "model.freeze",
                f"'{prefix}' matches no parameter; the model's top-level modules are "
                f"{', '.join(tops)} (parameter names look like {next(iter(named))})",
            )
    frozen = 0
    for name, param in named.items():
        if any(_under(name, prefix) for prefix in prefixes):
            param.requires_grad_(False)
            frozen += param.numel()
    if all(not p.requires_grad for p in named.values()):
        raise FedrobustError("model.freeze", "freezes every parameter: nothing is left to train")
    return frozen


def _under(name: str, prefix: str) -> bool:
    prefix = prefix.rstrip(".")
    return name == prefix or name.startswith(prefix + ".")


def head_layer(model: nn.Module) -> tuple[str, nn.Linear] | None:
    """The classifier head: the last ``nn.Linear`` of ``model`` and its module name
    (``None`` when the model has no linear layer)."""
    linear = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linear[-1] if linear else None


def reset_head(model: nn.Module, seed: int) -> str:
    """Re-initialise the last ``nn.Linear`` of ``model`` (PyTorch's default scheme,
    uniform in ``±1/sqrt(fan_in)``) from a generator seeded with ``seed``.

    Returns the head's module name.

    Raises
    ------
    FedrobustError
        Naming ``model.reset_head`` when the model has no ``nn.Linear``.
    """
    found = head_layer(model)
    if found is None:
        raise FedrobustError("model.reset_head", "the model has no linear layer to reset")
    name, head = found
    generator = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(head.in_features)
    with torch.no_grad():
        head.weight.copy_(torch.rand(head.weight.shape, generator=generator) * 2 * bound - bound)
        if head.bias is not None:
            head.bias.copy_(torch.rand(head.bias.shape, generator=generator) * 2 * bound - bound)
    return name


def frozen_count(model: nn.Module) -> int:
    """The number of parameter values that do not train."""
    return sum(p.numel() for p in model.parameters() if not p.requires_grad)


def keep_frozen(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with the frozen parameters of ``model`` as ``model`` holds them."""
    kept = dict(state)
    for name, param in model.named_parameters():
        if not param.requires_grad and name in kept:
            kept[name] = param.detach().clone()
    return kept
