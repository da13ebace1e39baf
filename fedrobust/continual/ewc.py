"""Elastic weight consolidation: a quadratic pull towards old weights, weighted by the Fisher.

Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting in neural networks",
https://arxiv.org/abs/1612.00796. Online EWC (one running Fisher, decayed):
Schwarz et al. 2018, "Progress & Compress", https://arxiv.org/abs/1805.06370.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from fedrobust.train.device import model_device
from fedrobust.train.plugins import TrainPlugin

#: ``loss_fn(logits, targets) -> scalar`` on a batch (called on one example at a time).
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _tensor(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(a) if isinstance(a, np.ndarray) else a


def fisher_diagonal(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    samples: int | None = None,
    loss_fn: LossFn | None = None,
    seed: int = 0,
    method: Literal["vmap", "loop"] = "vmap",
    chunk_size: int = 256,
    kind: Literal["empirical", "true"] = "empirical",
) -> list[torch.Tensor]:
    """The Fisher diagonal: per-example squared gradients, averaged.

    ``F_k = 1/n * sum_i (d loss(x_i, y_i) / d w_k)^2`` over ``n`` examples, computed in
    eval mode (no dropout, BatchNorm running statistics). ``kind="empirical"`` uses the
    examples' own labels; ``kind="true"`` draws each ``y_i`` from the model's predictive
    distribution (seeded), the Fisher information proper (Kunstner et al. 2019,
    https://arxiv.org/abs/1905.12558, on why the two differ).

    Parameters
    ----------
    model : nn.Module
        The model after training on the task; left unchanged (its mode is restored).
    x, y : np.ndarray or torch.Tensor
        The task's inputs and labels.
    samples : int, optional
        Use this many examples drawn at random without replacement (default: all).
    loss_fn : callable, optional
        ``loss_fn(logits, targets) -> scalar`` (default: cross-entropy). It is called on
        one example at a time, so a mean-reduced loss gives that example's loss.
    seed : int
        Seeds the choice of examples.
    method : {"vmap", "loop"}
        ``vmap``: per-example gradients with ``torch.func`` in chunks; ``loop``: one
        backward pass per example (for models ``torch.func`` cannot trace).
    chunk_size : int
        Examples per ``vmap`` call (bounds memory).
    kind : {"empirical", "true"}
        Labels from the data, or sampled from the model.

    Returns
    -------
    list of torch.Tensor
        One tensor per entry of ``model.parameters()``, same shapes and order.
    """
    inputs, targets = _tensor(x), _tensor(y)
    if len(inputs) == 0:
        raise ValueError("fisher_diagonal needs at least one example")
    if samples is not None and samples < len(inputs):
        chosen = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed))
        chosen = chosen[:samples].to(inputs.device)
        inputs, targets = inputs[chosen], targets[chosen]
    loss_fn = loss_fn or F.cross_entropy
    was_training = model.training
    model.eval()
    if kind == "true":
        with torch.no_grad():
            probs = torch.softmax(model(inputs), dim=1)
        generator = torch.Generator().manual_seed(seed + 1)
        targets = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(targets.dtype)
    try:
        if method == "vmap":
            squares = _squared_grads_vmap(model, inputs, targets, loss_fn, chunk_size)
        else:
            squares = _squared_grads_loop(model, inputs, targets, loss_fn)
    finally:
        model.train(was_training)
    return [s / len(inputs) for s in squares]


def _squared_grads_vmap(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    chunk_size: int,
) -> list[torch.Tensor]:
    names = [name for name, _ in model.named_parameters()]
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def example_loss(
        weights: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor
    ) -> torch.Tensor:
        logits = functional_call(model, (weights, buffers), (xi.unsqueeze(0),))
        return loss_fn(logits, yi.unsqueeze(0))

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))
    squares = [torch.zeros_like(params[name]) for name in names]
    for start in range(0, len(x), chunk_size):
        grads = per_example(params, x[start : start + chunk_size], y[start : start + chunk_size])
        for total, name in zip(squares, names, strict=True):
            total += grads[name].pow(2).sum(0)
    return squares


def _squared_grads_loop(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn
) -> list[torch.Tensor]:
    params = list(model.parameters())
    squares = [torch.zeros_like(p) for p in params]
    for i in range(len(x)):
        loss = loss_fn(model(x[i : i + 1]), y[i : i + 1])
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for total, g in zip(squares, grads, strict=True):
            if g is not None:
                total += g.detach().pow(2)
    return squares


def merge_fisher(
    old: Sequence[torch.Tensor], new: Sequence[torch.Tensor], decay: float
) -> list[torch.Tensor]:
    """Online EWC's running Fisher: ``decay * old + new`` (Schwarz et al. 2018).

    Parameters
    ----------
    old, new : sequence of torch.Tensor
        The running Fisher so far and the latest task's, parameter by parameter.
    decay : float
        ``gamma`` in [0, 1]: how much of the old tasks' importance is kept.

    Returns
    -------
    list of torch.Tensor
        The merged Fisher (new tensors).
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    return [decay * o + n for o, n in zip(old, new, strict=True)]


def snapshot(model: nn.Module) -> list[torch.Tensor]:
    """Detached copies of ``model.parameters()`` (an EWC anchor)."""
    return [p.detach().clone() for p in model.parameters()]


class EWC(TrainPlugin):
    """The EWC penalty ``lam / 2 * sum_k F_k (w_k - anchor_k)^2`` via the ``penalty`` hook.

    Parameters
    ----------
    fisher : sequence of torch.Tensor
        Diagonal Fisher per entry of ``model.parameters()`` (see :func:`fisher_diagonal`).
    anchor : sequence of torch.Tensor
        The weights to stay near (the model after the previous task), same order.
    lam : float
        Strength of the penalty (``lambda``).

    Notes
    -----
    Parameters are matched by position in ``model.parameters()``, so the penalty applies
    unchanged to a :class:`~fedrobust.continual.tasks.MaskedHead` around the model.
    For several past tasks either keep one plugin per task (offline EWC) or one running
    Fisher (:meth:`consolidate`, online EWC). Under DP-SGD the penalty joins the gradient
    after clipping and noise; it depends on the weights only, but the Fisher was computed
    from earlier tasks' data without privatisation, so the integration must either refuse
    EWC with DP or compute the Fisher privately.
    """

    def __init__(
        self, fisher: Sequence[torch.Tensor], anchor: Sequence[torch.Tensor], lam: float
    ) -> None:
        if len(fisher) != len(anchor):
            raise ValueError(f"{len(fisher)} Fisher tensors but {len(anchor)} anchor tensors")
        if lam < 0:
            raise ValueError(f"EWC lam must be >= 0, got {lam}")
        self.fisher = [f.detach() for f in fisher]
        self.anchor = [a.detach() for a in anchor]
        self.lam = lam

    def consolidate(
        self, fisher: Sequence[torch.Tensor], anchor: Sequence[torch.Tensor], decay: float
    ) -> None:
        """Online EWC after a task: merge its Fisher into the running one; move the anchor.

        Parameters
        ----------
        fisher : sequence of torch.Tensor
            The finished task's Fisher.
        anchor : sequence of torch.Tensor
            The weights after the finished task.
        decay : float
            Weight kept of the running Fisher (see :func:`merge_fisher`).
        """
        self.fisher = merge_fisher(self.fisher, [f.detach() for f in fisher], decay)
        self.anchor = [a.detach().clone() for a in anchor]

    def before_training(self, model: nn.Module) -> nn.Module:
        device = model_device(model)  # the Fisher and anchor join the model's device
        self.fisher = [f.to(device) for f in self.fisher]
        self.anchor = [a.to(device) for a in self.anchor]
        return model

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        if self.lam == 0:
            return None
        total = sum(
            torch.sum(f * (p - a) ** 2)
            for p, f, a in zip(model.parameters(), self.fisher, self.anchor, strict=True)
        )
        return 0.5 * self.lam * total

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Fisher and anchor as ``fisher.<i>`` / ``anchor.<i>`` tensors (``lam`` is config)."""
        state = {f"fisher.{i}": f.clone() for i, f in enumerate(self.fisher)}
        state.update({f"anchor.{i}": a.clone() for i, a in enumerate(self.anchor)})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the Fisher and anchor from :meth:`state_dict`'s output."""
        count = sum(1 for key in state if key.startswith("fisher."))
        expected = {f"fisher.{i}" for i in range(count)} | {f"anchor.{i}" for i in range(count)}
        if set(state) != expected:
            raise ValueError(f"not an EWC state: keys {sorted(state)}")
        self.fisher = [state[f"fisher.{i}"] for i in range(count)]
        self.anchor = [state[f"anchor.{i}"] for i in range(count)]
