"""Gradient inversion: the server reconstructs a client's training inputs from its update.

The server sent the global weights and got back the client's weights after local
training; their difference (:func:`pseudo_gradient`) is, for one plain SGD step, the
learning rate times the gradient of the client's batch. The labels of that batch are
read off the last layer (:func:`infer_labels`, iDLG), then dummy inputs are optimised
until the gradient they produce matches the received one (:class:`GradientInversion`).

The attacks follow torchattacks' layout: a thick base class that runs the optimisation
and thin attacks that only say how two gradients are compared
(:meth:`GradientInversion.matching_loss`). :data:`INVERSION_METHODS` names them as the
``evaluation.privacy_attacks.inversion.method`` setting does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def pseudo_gradient(
    model: nn.Module, before: dict[str, Tensor], after: dict[str, Tensor]
) -> list[Tensor]:
    """The update as a gradient: ``before - after`` for each of the model's parameters.

    For one plain SGD step this is the learning rate times the gradient of the batch;
    for several steps it is their (scaled) sum. Cosine matching does not care about the
    scale.

    Parameters
    ----------
    model : nn.Module
        The model; its ``named_parameters()`` give the names and the order (buffers
        are skipped).
    before : dict[str, Tensor]
        The global weights the server sent (a state dict).
    after : dict[str, Tensor]
        The weights the client sent back.

    Returns
    -------
    list of Tensor
        One float32 tensor per parameter, in ``named_parameters()`` order.

    Raises
    ------
    KeyError
        When ``before`` or ``after`` lacks a parameter; the message names it.
    """
    gradient: list[Tensor] = []
    for name, _ in model.named_parameters():
        if name not in before:
            raise KeyError(f"parameter '{name}' missing from the weights sent ('before')")
        if name not in after:
            raise KeyError(f"parameter '{name}' missing from the weights received ('after')")
        old = before[name].detach().to(torch.float32)
        new = after[name].detach().to(torch.float32)
        gradient.append(old - new)
    return gradient


def _parameter_position(model: nn.Module, parameter: Tensor) -> int:
    """Where ``parameter`` is in ``model.parameters()`` (the gradient list's order)."""
    for position, candidate in enumerate(model.parameters()):
        if candidate is parameter:
            return position
    raise ValueError("the parameter does not belong to the model")


def infer_labels(
    gradient: list[Tensor],
    model: nn.Module,
    count: int,
    num_classes: int,
    *,
    mean_prediction: Tensor | None = None,
) -> Tensor:
    """The labels of the batch behind ``gradient``, read off the last linear layer.

    iDLG (Zhao et al. 2020, "iDLG: Improved Deep Leakage from Gradients",
    https://arxiv.org/abs/2001.02610), extended to batches as in Geiping et al. 2020
    and Yin et al. 2021: under cross-entropy the gradient of the last layer's bias is
    ``mean(softmax - onehot)`` over the batch, so the classes in the batch have negative
    entries. Without a bias the row sums of the weight's gradient stand in (their sign
    is the same when the layer's inputs are non-negative, as after a ReLU).

    Parameters
    ----------
    gradient : list of Tensor
        The gradient, in ``model.parameters()`` order (:func:`pseudo_gradient`).
    model : nn.Module
        The model; its last ``nn.Linear`` (in ``modules()`` order) is the one read.
    count : int
        How many labels to return (the batch size).
    num_classes : int
        The model's number of classes (the last layer's outputs).
    mean_prediction : Tensor, optional
        The model's mean softmax over data like the client's (the server's own data).
        With it, ``gradient`` must be on the scale of the batch's mean gradient (the
        update over the learning rate and local steps) and the bias is read as
        ``g_c = mean_prediction_c - n_c / count``, so each class's count
        ``n_c`` is estimated and classes seen several times are repeated (LLG+,
        Wainakh et al. 2022, "User-Level Label Leakage from Gradients in Federated
        Learning", https://arxiv.org/abs/2105.09369).

    Returns
    -------
    Tensor
        ``count`` labels (int64): the classes with negative entries, most negative
        first, repeated in that order when ``count`` exceeds them (with
        ``mean_prediction``: each class by its estimated count). With no negative entry
        (a noisy gradient) all classes are ranked the same way.
    """
    last: nn.Linear | None = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    if last is None:
        raise ValueError("the model has no nn.Linear layer to read the labels from")
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")

    if last.bias is not None:
        entries = gradient[_parameter_position(model, last.bias)].detach()
    else:
        entries = gradient[_parameter_position(model, last.weight)].detach().sum(dim=1)
    entries = entries.to(torch.float64).flatten()
    if entries.numel() != num_classes:
        raise ValueError(f"the last layer has {entries.numel()} outputs, not {num_classes}")

    if mean_prediction is not None and last.bias is not None:
        return _counted_labels(mean_prediction.to(torch.float64) - entries, count)
    order = torch.argsort(entries, stable=True)
    candidates = order[entries[order] < 0]
    if candidates.numel() == 0:
        candidates = order
    positions = torch.arange(count) % candidates.numel()
    return candidates[positions].to(torch.int64)


def _counted_labels(share: Tensor, count: int) -> Tensor:
    """``count`` labels in proportion to ``share`` (estimated class fractions; negative
    ones count as 0): largest remainders, classes in order of their share."""
    share = share.clamp(min=0)
    if float(share.sum()) <= 0:
        share = torch.ones_like(share)
    expected = share / share.sum() * count
    counts = expected.floor().to(torch.int64)
    remainder = expected - counts
    for i in torch.argsort(remainder, descending=True, stable=True).tolist():
        if int(counts.sum()) >= count:
            break
        counts[i] += 1
    order = torch.argsort(expected, descending=True, stable=True)
    return torch.repeat_interleave(order, counts[order]).to(torch.int64)


def total_variation(x: Tensor) -> Tensor:
    """Mean absolute difference of neighbouring pixels along H and along W, summed.

    ``x`` is a batch (K, ..., H, W); inputs with fewer than 3 dimensions (flat
    features) are not images and have 0.
    """
    if x.dim() < 3:
        return x.new_zeros(())
    along_h = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    along_w = (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    return along_h + along_w


@dataclass
class InversionResult:
    """What an inversion reconstructed.

    Parameters
    ----------
    images : Tensor
        The reconstructed inputs, shape (K, *shape).
    loss : float
        The matching loss of the winning restart at its last step.
    labels : Tensor
        The labels the reconstruction used, shape (K,).
    """

    images: Tensor
    loss: float
    labels: Tensor


class GradientInversion:
    """Base of the gradient-inversion attacks: optimise dummy inputs to match a gradient.

    Dummy inputs start uniform in ``bounds``; Adam moves them so that the cross-entropy
    gradient of the model on (dummies, labels) matches the target gradient under
    :meth:`matching_loss`, plus ``tv`` times their total variation. The learning rate
    drops tenfold at 3/8, 5/8 and 7/8 of the iterations (as in Geiping et al. 2020) and
    the dummies are clamped to ``bounds`` after each step. Of ``restarts`` random
    starts the one with the lowest final matching loss wins. Subclasses override
    :meth:`matching_loss` and may set :attr:`signed`.

    Parameters
    ----------
    model : nn.Module
        The model the gradient came from, holding the weights it was computed at. It
        is run in ``eval()`` mode; its weights are never changed and its modes and
        ``requires_grad`` flags are restored afterwards.
    iterations : int
        Optimisation steps per restart.
    restarts : int
        Random starts; the best one is kept.
    lr : float
        Adam's initial learning rate.
    tv : float, optional
        Weight of the total-variation prior (0 turns it off); default the class's
        ``default_tv``.
    bounds : tuple of float
        Range of the inputs (low, high).
    seed : int
        Seed of the random starts.
    """

    #: Whether Adam is fed the sign of the dummies' gradient rather than the gradient.
    signed: bool = False
    #: The total-variation weight when ``tv`` is not given.
    default_tv: float = 0.0

    def __init__(
        self,
        model: nn.Module,
        *,
        iterations: int = 2000,
        restarts: int = 1,
        lr: float = 0.1,
        tv: float | None = None,
        bounds: tuple[float, float] = (0.0, 1.0),
        seed: int = 0,
    ) -> None:
        if iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {iterations}")
        if restarts < 1:
            raise ValueError(f"restarts must be at least 1, got {restarts}")
        if bounds[0] >= bounds[1]:
            raise ValueError(f"bounds must be (low, high) with low < high, got {bounds}")
        self.model = model
        self.iterations = iterations
        self.restarts = restarts
        self.lr = lr
        self.tv = self.default_tv if tv is None else tv
        self.bounds = bounds
        self.seed = seed

    def matching_loss(self, dummy: list[Tensor], target: list[Tensor]) -> Tensor:
        """How far the dummies' gradient is from the target (a scalar; 0 is a match).

        Parameters
        ----------
        dummy : list of Tensor
            The dummies' gradient, one tensor per parameter (differentiable).
        target : list of Tensor
            The target gradient, in the same order.
        """
        raise NotImplementedError

    def reconstruct(
        self, target: list[Tensor], labels: Tensor, shape: tuple[int, ...]
    ) -> InversionResult:
        """Reconstruct ``len(labels)`` inputs whose gradient matches ``target``.

        Parameters
        ----------
        target : list of Tensor
            The gradient to match, in ``model.parameters()`` order
            (:func:`pseudo_gradient`).
        labels : Tensor
            The labels of the batch (:func:`infer_labels`), shape (K,).
        shape : tuple of int
            The shape of one input, e.g. (1, 28, 28).

        Returns
        -------
        InversionResult
            The reconstructions of the best restart, its final matching loss, the
            labels.
        """
        parameters = list(self.model.parameters())
        if len(target) != len(parameters):
            raise ValueError(
                f"the target gradient has {len(target)} tensors, the model "
                f"{len(parameters)} parameters"
            )
        device = parameters[0].device
        target = [t.detach().to(device=device, dtype=torch.float32) for t in target]
        labels = labels.detach().to(device=device, dtype=torch.int64)

        modes = [module.training for module in self.model.modules()]
        flags = [parameter.requires_grad for parameter in parameters]
        self.model.eval()
        for parameter in parameters:
            parameter.requires_grad_(True)
        try:
            generator = torch.Generator().manual_seed(self.seed)
            best_images: Tensor | None = None
            best_loss = float("inf")
            for _ in range(self.restarts):
                images, loss = self._one_restart(target, labels, shape, generator)
                if best_images is None or loss < best_loss:
                    best_images, best_loss = images, loss
        finally:
            for module, mode in zip(self.model.modules(), modes, strict=True):
                module.training = mode
            for parameter, flag in zip(parameters, flags, strict=True):
                parameter.requires_grad_(flag)
        return InversionResult(images=best_images, loss=best_loss, labels=labels.cpu())

    def _dummy_gradient(self, dummy: Tensor, labels: Tensor, create_graph: bool) -> list[Tensor]:
        """The cross-entropy gradient of the model on (dummy, labels), per parameter."""
        parameters = list(self.model.parameters())
        loss = F.cross_entropy(self.model(dummy), labels)
        gradient = torch.autograd.grad(
            loss, parameters, create_graph=create_graph, allow_unused=True
        )
        return [
            torch.zeros_like(parameter) if g is None else g
            for parameter, g in zip(parameters, gradient, strict=True)
        ]

    def _one_restart(
        self,
        target: list[Tensor],
        labels: Tensor,
        shape: tuple[int, ...],
        generator: torch.Generator,
    ) -> tuple[Tensor, float]:
        """Optimise one random start; return its dummies (on CPU) and final matching loss."""
        low, high = self.bounds
        start = low + (high - low) * torch.rand((len(labels), *shape), generator=generator)
        dummy = start.to(target[0].device).requires_grad_(True)
        optimizer = torch.optim.Adam([dummy], lr=self.lr)
        milestones = [self.iterations * 3 // 8, self.iterations * 5 // 8, self.iterations * 7 // 8]
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)

        for _ in range(self.iterations):
            optimizer.zero_grad()
            gradient = self._dummy_gradient(dummy, labels, create_graph=True)
            objective = self.matching_loss(gradient, target)
            if self.tv > 0:
                objective = objective + self.tv * total_variation(dummy)
            (step,) = torch.autograd.grad(objective, [dummy])
            dummy.grad = step.sign() if self.signed else step
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                dummy.clamp_(low, high)

        gradient = self._dummy_gradient(dummy, labels, create_graph=False)
        with torch.no_grad():
            final_loss = float(self.matching_loss(gradient, target))
        return dummy.detach().cpu(), final_loss


class InvertingGradients(GradientInversion):
    """Cosine matching with a total-variation prior and signed Adam.

    Geiping et al. 2020, "Inverting Gradients - How easy is it to break privacy in
    federated learning?", https://arxiv.org/abs/2003.14053. The matching loss is one
    minus the cosine similarity of the concatenated gradients (blind to the update's
    scale, so the pseudo-gradient of any learning rate works); Adam is fed the sign of
    the dummies' gradient. The total-variation weight defaults to 1e-4, a light prior
    that favours smooth images without washing out detail.
    """

    signed = True
    default_tv = 1e-4

    def matching_loss(self, dummy: list[Tensor], target: list[Tensor]) -> Tensor:
        """``1 - cos(dummy, target)`` of the concatenated gradients."""
        flat_dummy = torch.cat([g.flatten() for g in dummy])
        flat_target = torch.cat([t.flatten() for t in target])
        norms = flat_dummy.norm() * flat_target.norm()
        return 1 - (flat_dummy * flat_target).sum() / norms.clamp_min(1e-12)


class DLG(GradientInversion):
    """Squared Euclidean distance of the gradients, plain Adam.

    Zhu et al. 2019, "Deep Leakage from Gradients", https://arxiv.org/abs/1906.08935,
    with the labels given (read off the last layer, iDLG) rather than optimised. The
    distance depends on the scale: the target must be the gradient itself (a
    pseudo-gradient divided by the client's learning rate), not a multiple of it.
    """

    def matching_loss(self, dummy: list[Tensor], target: list[Tensor]) -> Tensor:
        """Sum over parameters of ``||dummy - target||²``."""
        loss = dummy[0].new_zeros(())
        for g, t in zip(dummy, target, strict=True):
            loss = loss + ((g - t) ** 2).sum()
        return loss


#: The attacks by their ``evaluation.privacy_attacks.inversion.method`` name.
INVERSION_METHODS: dict[str, type[GradientInversion]] = {
    "geiping": InvertingGradients,
    "dlg": DLG,
}
