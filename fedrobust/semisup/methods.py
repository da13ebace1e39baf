"""The unlabelled term of a training batch: pseudo-labelling and FixMatch.

Both mask out the unlabelled inputs whose predicted class is not confident enough (largest
softmax probability below ``threshold``) and average the cross-entropy over the whole
unlabelled batch, masked ones counting as 0 (FixMatch's definition; a batch where nothing
passes adds exactly 0).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedrobust.semisup.augment import strong_view, weak_view
from fedrobust.semisup.config import SemiSupervisedConfig
from fedrobust.train.device import model_device, to_device
from fedrobust.train.plugins import TrainPlugin


def confident_targets(logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The predicted classes of ``logits`` and the mask of those at least ``threshold``
    confident (largest softmax probability), both without gradient."""
    probs = torch.softmax(logits.detach().float(), dim=1)
    confidence, targets = probs.max(dim=1)
    return targets, (confidence >= threshold).float()


def masked_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``mean(mask * CE(logits, targets))`` over the whole batch."""
    return (F.cross_entropy(logits.float(), targets, reduction="none") * mask).mean()


def pseudo_label_loss(logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Lee (2013): the cross-entropy of ``logits`` against their own confident argmax.

    Returns the loss and the mask of the inputs that count.
    """
    targets, mask = confident_targets(logits, threshold)
    return masked_cross_entropy(logits, targets, mask), mask


def fixmatch_loss(
    model: nn.Module, weak: torch.Tensor, strong: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sohn et al. (2020): the weak view's confident argmax (no gradient) is the target
    of the strong view's prediction.

    Returns the loss and the mask of the inputs that count.
    """
    with torch.no_grad():
        targets, mask = confident_targets(model(weak), threshold)
    return masked_cross_entropy(model(strong), targets, mask), mask


class UnlabeledBatches:
    """Endless seeded batches of a client's unlabelled inputs, reshuffled every pass.

    Parameters
    ----------
    x : np.ndarray
        The unlabelled inputs.
    batch_size : int
        Inputs per batch (a pass shorter than a batch continues into the next one).
    seed : int
        Seeds the order.
    """

    def __init__(self, x: np.ndarray, batch_size: int, seed: int) -> None:
        if len(x) == 0:
            raise ValueError("no unlabelled inputs to draw batches from")
        self.x = torch.from_numpy(x)
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.queue = torch.zeros(0, dtype=torch.long)

    def next(self) -> torch.Tensor:
        """The next batch of inputs."""
        while len(self.queue) < self.batch_size:
            order = torch.randperm(len(self.x), generator=self.generator)
            self.queue = torch.cat([self.queue, order])
        batch, self.queue = self.queue[: self.batch_size], self.queue[self.batch_size :]
        return self.x[batch]


class SemiSupervisedTerm(TrainPlugin):
    """Adds ``weight * unlabelled loss`` to every batch's loss, on a batch of its own.

    Parameters
    ----------
    cfg : SemiSupervisedConfig
        Method, threshold, weight, augmentations.
    unlabeled : np.ndarray
        The client's unlabelled inputs.
    batch_size : int
        The labelled batch size (times ``cfg.unlabeled_batch_ratio`` per batch).
    seed : int
        Seeds the unlabelled batches and their augmentation.
    rnd : int
        The federated round (for ``cfg.rampup_rounds``).
    """

    def __init__(
        self,
        cfg: SemiSupervisedConfig,
        unlabeled: np.ndarray,
        batch_size: int,
        seed: int,
        rnd: int,
    ) -> None:
        self.cfg = cfg
        self.weight = cfg.ramp(rnd)
        self.batches = UnlabeledBatches(unlabeled, batch_size * cfg.unlabeled_batch_ratio, seed)
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.passed = 0
        self.seen = 0

    def loss(self, model: nn.Module, loss: torch.Tensor) -> torch.Tensor:
        if self.weight == 0:
            return loss
        x = self.batches.next()  # drawn and augmented on the CPU, then moved over
        device = model_device(model)
        if self.cfg.method == "fixmatch":
            weak = to_device(weak_view(x, self.cfg.weak, self.generator), device)
            strong = to_device(strong_view(x, self.cfg.strong, self.generator), device)
            term, mask = fixmatch_loss(model, weak, strong, self.cfg.threshold)
        else:
            term, mask = pseudo_label_loss(model(to_device(x, device)), self.cfg.threshold)
        self.passed += int(mask.sum())
        self.seen += len(mask)
        return loss + self.weight * term

    def mask_rate(self) -> float:
        """The share of unlabelled inputs that passed the threshold so far (NaN: none
        drawn)."""
        return self.passed / self.seen if self.seen else float("nan")
