"""The one local-training code path, shared by simulation and edge clients.

``local_train`` runs ``train.local_epochs`` passes of mini-batch training over the
client's data with the scenario's optimizer, loss, class weights, sampler, gradient
clipping and precision, on ``train.device`` (:mod:`fedrobust.train.device`; the model
returns to where it was); with a DP-SGD recipe, Opacus's per-sample clipping and noise.
Each batch's gradient is taken where :mod:`fedrobust.train.sam` says: at the weights, at
SAM / ASAM's ascent point, or under Gaussian weight noise. Extra terms and batch
transforms (FedProx, L1, augmentation, adversarial examples, continual-learning penalties
and replay) come in as :class:`~fedrobust.train.plugins.TrainPlugin` objects whose hooks
take values and return values.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from fedrobust.privacy.dpsgd import DPSGDRecipe, PrivateTraining
from fedrobust.privacy.ledger import LedgerEntry
from fedrobust.train.config import OptimizerConfig, TrainConfig
from fedrobust.train.device import (
    autocast,
    check_precision,
    current_device,
    grad_scaler,
    on_device,
    resolve_device,
    set_deterministic,
    to_device,
)
from fedrobust.train.losses import create_loss
from fedrobust.train.plugins import TrainPlugin
from fedrobust.train.sam import Perturbation, perturbation


@dataclass(frozen=True)
class TrainResult:
    """What one client's local training produced.

    ``privacy`` is the round's DP release and ``epsilon`` the client's cumulative
    epsilon after it (both ``None`` without DP-SGD).
    """

    num_examples: int
    steps: int
    loss: float
    accuracy: float
    privacy: LedgerEntry | None = None
    epsilon: float | None = None


def make_optimizer(
    model: nn.Module, cfg: OptimizerConfig, lr: float | None = None
) -> torch.optim.Optimizer:
    """The client optimizer named in the scenario (``lr`` overrides ``cfg.lr``)."""
    lr = cfg.lr if lr is None else lr
    params = [p for p in model.parameters() if p.requires_grad]  # model.freeze: not these
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def balanced_class_weights(y: np.ndarray, num_classes: int) -> torch.Tensor:
    """``n / (K_present * n_c)`` per class present in ``y``; 0 for absent classes."""
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = len(y) / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def _epoch_order(y: torch.Tensor, balanced: bool, generator: torch.Generator) -> torch.Tensor:
    """Sample order for one epoch: a permutation, or class-balanced draws with replacement."""
    if not balanced:
        return torch.randperm(len(y), generator=generator)
    counts = torch.bincount(y)
    weights = 1.0 / counts[y].double()
    return torch.multinomial(weights, len(y), replacement=True, generator=generator)


def _plain_batches(
    x: torch.Tensor, y: torch.Tensor, train: TrainConfig, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    order = _epoch_order(y, train.sampler == "balanced", generator)
    for start in range(0, len(order), train.batch_size):
        batch = order[start : start + train.batch_size]
        yield x[batch], y[batch]


def _penalty(plugins: tuple[TrainPlugin, ...], model: nn.Module) -> torch.Tensor | None:
    terms = [t for t in (plugin.penalty(model) for plugin in plugins) if t is not None]
    return sum(terms[1:], terms[0]) if terms else None


def _perturbation(
    train: TrainConfig, model: nn.Module, seed: int, dp: DPSGDRecipe | None
) -> Perturbation:
    """Where each step takes its gradient (``fedrobust.train.sam``): SAM's ascent would
    read the raw per-example gradients DP-SGD must not release, so it has no DP path."""
    if dp is not None and train.optimizer.sam is not None:
        raise ValueError("train.optimizer.sam does not run under DP-SGD")
    return perturbation(train, model, seed)


def local_train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    train: TrainConfig,
    num_classes: int,
    seed: int,
    lr: float | None = None,
    plugins: tuple[TrainPlugin, ...] = (),
    dp: DPSGDRecipe | None = None,
    rnd: int = 0,
) -> TrainResult:
    """Train ``model`` in place on ``(x, y)`` with the scenario's training recipe.

    Parameters
    ----------
    model : nn.Module
        The model, holding the global weights on entry.
    x, y : np.ndarray
        Training inputs and labels.
    train : TrainConfig
        Epochs, batch size, optimizer, loss, class weights, sampler, gradient clipping
        and precision.
    num_classes : int
        Number of classes (for class weights).
    seed : int
        Seeds the batch order (and DP noise), so a (seed, round, client) triple repeats.
    lr : float, optional
        This round's learning rate (from the schedule); default ``train.optimizer.lr``.
    plugins : tuple[TrainPlugin, ...]
        Loop extensions, applied in order.
    dp : DPSGDRecipe, optional
        Train with DP-SGD (Poisson batches, per-example clipping, noise).
    rnd : int
        The federated round (recorded in the DP ledger entry).

    Returns
    -------
    TrainResult
        Examples per epoch, optimizer steps, mean training loss and accuracy, and the
        DP release.
    """
    if len(y) == 0:
        raise ValueError("local_train needs at least one training example")
    device = resolve_device(train.device)
    check_precision(train.precision, device)
    set_deterministic(train.deterministic)
    with on_device(model, device):
        return _train_on(model, x, y, train, num_classes, seed, lr, plugins, dp, rnd, device)


def _train_on(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    train: TrainConfig,
    num_classes: int,
    seed: int,
    lr: float | None,
    plugins: tuple[TrainPlugin, ...],
    dp: DPSGDRecipe | None,
    rnd: int,
    device: torch.device,
) -> TrainResult:
    """:func:`local_train` with ``model`` on ``device``: batches are cut on the CPU (the
    same order on every device) and copied over."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # layers that draw from the global RNG (dropout) repeat too
    inputs = torch.from_numpy(x)
    targets = torch.from_numpy(y)
    opt = make_optimizer(model, train.optimizer, lr)
    weight = None
    if train.class_weights == "balanced":
        weight = balanced_class_weights(y, num_classes).to(device)
    criterion = create_loss(train.loss.name, weight=weight, **train.loss.params())
    cast = autocast(train.precision, device)
    scaler = grad_scaler(train.precision, device)
    for plugin in plugins:
        model = plugin.before_training(model)
    private = None
    net = model
    if dp is not None:
        private = PrivateTraining(
            model, opt, criterion, inputs, targets, train.batch_size, dp, seed,
            penalty=lambda: _penalty(plugins, model), grad_clip=train.grad_clip,
        )  # fmt: skip
        net, criterion, opt = private.model, private.criterion, private.optimizer
    net.train()
    perturbation = _perturbation(train, model, seed, dp)

    def gradients(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward and backward pass of the batch: its data loss and logits."""
        with cast:
            logits = net(xb)
        loss = criterion(logits.float(), yb)
        for plugin in plugins:
            loss = plugin.loss(net, loss)
        if private is not None:
            private.backward(loss)  # the penalty joins after clipping and noise
        else:
            penalty = _penalty(plugins, model)
            total = loss if penalty is None else loss + penalty
            (total if scaler is None else scaler.scale(total)).backward()
        return loss, logits

    steps, seen = 0, 0
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device:
    correct = torch.zeros((), dtype=torch.int64, device=device)  # no sync per batch
    try:
        for _ in range(train.local_epochs):
            batches = (
                private.epoch() if private else _plain_batches(inputs, targets, train, generator)
            )
            for xb, yb in batches:
                xb, yb = to_device(xb, device), to_device(yb, device)
                with private.hooks_paused() if private else nullcontext():
                    for plugin in plugins:  # e.g. attacks: no per-sample gradients recorded
                        xb, yb = plugin.batch(xb, yb)
                opt.zero_grad(set_to_none=True)
                loss, logits = perturbation.gradients(partial(gradients, xb, yb))
                if private is not None:
                    private.step()
                else:
                    _step(model, opt, train.grad_clip, scaler)
                    steps += 1
                if len(yb):  # Poisson sampling can draw an empty batch: a step, no examples
                    loss_sum += loss.detach().double() * len(yb)
                    correct += (logits.argmax(1) == yb).sum()
                    seen += len(yb)
    finally:
        if private is not None:
            private.close()
    return TrainResult(
        num_examples=len(targets),
        steps=private.entry(rnd).steps if private else steps,
        loss=float(loss_sum) / seen if seen else float("nan"),
        accuracy=int(correct) / seen if seen else float("nan"),
        privacy=private.entry(rnd) if private else None,
        epsilon=private.epsilon() if private else None,
    )


def _step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    grad_clip: float | None,
    scaler: torch.amp.GradScaler | None,
) -> None:
    """Clip (at the true gradient's scale) and apply the batch's gradient; under fp16
    the scaler skips a step whose gradient overflowed."""
    if scaler is not None:
        scaler.unscale_(opt)
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is None:
        opt.step()
        return
    scaler.step(opt)
    scaler.update()


@dataclass(frozen=True)
class EvalResult:
    """Loss and accuracy figures of a model on a labelled set.

    ``balanced_accuracy`` is the mean recall over the classes present in the set;
    ``recall`` holds each class's recall (NaN for a class absent from the set).
    """

    loss: float
    accuracy: float
    balanced_accuracy: float
    recall: list[float]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int | None = None,
    batch_size: int = 512,
    device: str | torch.device | None = None,
) -> EvalResult:
    """Mean cross-entropy, accuracy, balanced accuracy and per-class recall on ``(x, y)``.

    ``device``: a ``train.device`` value or a torch device to evaluate on (the model
    returns where it was); default this process's :func:`~fedrobust.train.device.
    current_device` (the CPU unless the ServerApp chose ``train.device``).
    """
    k = num_classes or (int(y.max()) + 1 if len(y) else 1)
    if len(y) == 0:
        nan = float("nan")
        return EvalResult(nan, nan, nan, [nan] * k)
    if device is None:
        device = current_device()
    elif isinstance(device, str):
        device = resolve_device(device)
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    predictions = []
    criterion = nn.CrossEntropyLoss(reduction="sum")
    with on_device(model, device):
        for start in range(0, len(y), batch_size):
            xb = to_device(torch.from_numpy(x[start : start + batch_size]), device)
            yb = to_device(torch.from_numpy(y[start : start + batch_size]), device)
            logits = model(xb)
            loss_sum += criterion(logits.float(), yb)
            predictions.append(logits.argmax(1).cpu().numpy())
    loss_total = float(loss_sum)  # one synchronisation, not one per batch
    predicted = np.concatenate(predictions)
    hits = np.bincount(y[predicted == y], minlength=k)
    totals = np.bincount(y, minlength=k)
    recall = [float(h / t) if t else float("nan") for h, t in zip(hits, totals, strict=True)]
    present = [r for r in recall if r == r]
    return EvalResult(
        loss=loss_total / len(y),
        accuracy=float(np.mean(predicted == y)),
        balanced_accuracy=float(np.mean(present)),
        recall=recall,
    )
