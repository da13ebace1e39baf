"""What each personalization method keeps private, and how a client builds its personal
model from the global one.

- finetune: nothing private; the personal model is the global model after
  ``finetune_epochs`` of local training.
- fedper (Arivazhagan et al. 2019, https://arxiv.org/abs/1912.00818): the last
  ``head_layers`` linear layers are private; all layers train together.
- fedrep (Collins et al. 2021, https://arxiv.org/abs/2102.07078): the same private head;
  each round trains the head with the body frozen, then the body with the head frozen.
- ditto (Li et al. 2021, https://arxiv.org/abs/2012.04221): a whole private model ``v``,
  trained with ``lambda / 2 * ||v - w_global||^2`` beside the usual global update.
- fedbn (Li et al. 2021, https://arxiv.org/abs/2102.07623): normalisation layers
  (their affine parameters and running statistics) are private.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from fedrobust.personalization.config import PersonalizationConfig
from fedrobust.train import TrainPlugin, local_train
from fedrobust.train.config import TrainConfig

NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)

State = dict[str, torch.Tensor]


def private_keys(model: nn.Module, cfg: PersonalizationConfig) -> list[str]:
    """The ``state_dict`` keys of ``model`` that stay on the client under ``cfg.method``.

    Raises
    ------
    ValueError
        ``personalization.head_layers: ...`` when the model has no body left under that
        head; ``personalization.method: ...`` for fedbn on a model without
        normalisation layers.
    """
    if cfg.method in ("fedper", "fedrep"):
        linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        if cfg.head_layers >= len(linear) and not _has_other_params(model, linear):
            raise ValueError(
                f"personalization.head_layers: {cfg.head_layers} of the model's "
                f"{len(linear)} linear layers leave no shared body"
            )
        if cfg.head_layers > len(linear):
            raise ValueError(
                f"personalization.head_layers: the model has {len(linear)} linear layers"
            )
        return _keys_of(model, linear[-cfg.head_layers :])
    if cfg.method == "fedbn":
        norms = [name for name, m in model.named_modules() if isinstance(m, NORM_LAYERS)]
        if not norms:
            raise ValueError(
                "personalization.method: fedbn keeps normalisation layers private, and "
                "this model has none (the cnn and resnet models have GroupNorm)"
            )
        return _keys_of(model, norms)
    return []


def _has_other_params(model: nn.Module, linear: list[str]) -> bool:
    prefixes = tuple(f"{name}." for name in linear)
    return any(not key.startswith(prefixes) for key, _ in model.named_parameters())


def _keys_of(model: nn.Module, modules: list[str]) -> list[str]:
    prefixes = tuple(f"{name}." for name in modules)
    return [key for key in model.state_dict() if key.startswith(prefixes)]


def with_state(model: nn.Module, state: State | None) -> nn.Module:
    """``model`` with ``state``'s entries loaded over its own (in place; returned)."""
    if state:
        merged = model.state_dict()
        merged.update(state)
        model.load_state_dict(merged)
    return model


def taken(model: nn.Module, keys: list[str]) -> State:
    """Copies of ``model``'s ``keys`` entries."""
    full = model.state_dict()
    return {key: full[key].detach().clone() for key in keys}


def set_trainable(model: nn.Module, keys: list[str], trainable: bool) -> None:
    """Freeze (or unfreeze) the parameters named in ``keys``; the others are untouched."""
    names = set(keys)
    for name, param in model.named_parameters():
        if name in names:
            param.requires_grad_(trainable)


def train_for(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    train: TrainConfig,
    epochs: int,
    *,
    num_classes: int,
    seed: int,
    lr: float,
    plugins: tuple[TrainPlugin, ...] = (),
) -> nn.Module:
    """``model`` after ``epochs`` of the scenario's local recipe on ``(x, y)``, without
    DP-SGD (the result never leaves the client). Trains in place; returns ``model``."""
    if len(y):
        recipe = train.model_copy(update={"local_epochs": epochs})
        local_train(
            model, x, y, train=recipe, num_classes=num_classes, seed=seed, lr=lr,
            plugins=plugins,
        )  # fmt: skip
    return model


def train_head(
    model: nn.Module,
    head: list[str],
    x: np.ndarray,
    y: np.ndarray,
    train: TrainConfig,
    epochs: int,
    *,
    num_classes: int,
    seed: int,
    lr: float,
) -> nn.Module:
    """FedRep's head step: ``epochs`` of training of the ``head`` parameters alone."""
    body = [name for name, _ in model.named_parameters() if name not in set(head)]
    set_trainable(model, body, False)
    try:
        train_for(model, x, y, train, epochs, num_classes=num_classes, seed=seed, lr=lr)
    finally:
        set_trainable(model, body, True)
    return model


def personal_copy(model: nn.Module) -> nn.Module:
    """A separate copy of ``model`` to personalise (the caller's model is not touched)."""
    return copy.deepcopy(model)
