"""Learning without Forgetting: distil the previous model's outputs on the current data.

Li & Hoiem 2017, "Learning without Forgetting", https://arxiv.org/abs/1606.09282
(temperature-scaled distillation: Hinton et al. 2015, https://arxiv.org/abs/1503.02531).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fedrobust.continual.tasks import MaskedHead
from fedrobust.train.device import model_device
from fedrobust.train.plugins import TrainPlugin


def distillation_loss(
    new_logits: torch.Tensor, old_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Per-example ``KL(softmax(old / T) || softmax(new / T))``.

    Parameters
    ----------
    new_logits, old_logits : torch.Tensor
        ``(N, K)`` scores of the model being trained and of the old (teacher) model.
    temperature : float
        ``T`` > 0; larger softens both distributions.

    Returns
    -------
    torch.Tensor
        ``(N,)`` divergences; exactly 0 where the logits are equal.
    """
    log_new = F.log_softmax(new_logits / temperature, dim=1)
    log_old = F.log_softmax(old_logits / temperature, dim=1)
    return F.kl_div(log_new, log_old, reduction="none", log_target=True).sum(1)


class LwF(TrainPlugin):
    """Adds ``alpha * T^2 * KL(softmax(old(x)/T) || softmax(new(x)/T))`` to the batch loss.

    The ``batch`` hook remembers the batch's inputs; the ``loss`` hook runs the network on
    them again (``local_train`` hands plugins the network and the loss, not the logits; a
    loop that passed the logits to the ``loss`` hook would save this second forward pass)
    and the frozen old model, and adds the distillation term. A per-example loss (DP-SGD's
    ``reduction="none"``) gets each example's term; a scalar loss gets the batch mean.

    Parameters
    ----------
    old_model : nn.Module
        The model before the current task (copied and frozen; the argument is not changed).
    temperature : float
        Distillation temperature ``T`` (Li & Hoiem use 2).
    alpha : float
        Weight of the distillation term (``lambda_o`` in the paper).
    classes : sequence of int, optional
        Distil only these logits (the old tasks' classes, as the paper distils the old
        heads); default all.

    Notes
    -----
    Place it after the plugins that change the batch (replay, augmentation), since it
    distils on the batch it is handed. When the trained network is a
    :class:`~fedrobust.continual.tasks.MaskedHead` (task-incremental training with
    :class:`~fedrobust.continual.tasks.TaskMask`) the wrapped model's unmasked logits are
    distilled, as the old tasks' heads are masked in the wrapper. The term depends on
    the training data, and the second forward pass would not be seen correctly by Opacus'
    per-sample hooks, so the federated integration must refuse LwF under DP-SGD.
    """

    def __init__(
        self,
        old_model: nn.Module,
        temperature: float = 2.0,
        alpha: float = 1.0,
        classes: Sequence[int] | None = None,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"LwF temperature must be > 0, got {temperature}")
        if alpha < 0:
            raise ValueError(f"LwF alpha must be >= 0, got {alpha}")
        self.old = copy.deepcopy(old_model).eval().requires_grad_(False)
        self.temperature = temperature
        self.alpha = alpha
        self.classes = None if classes is None else [int(c) for c in classes]
        self.inputs: torch.Tensor | None = None

    def before_training(self, model: nn.Module) -> nn.Module:
        self.old.to(model_device(model))  # the teacher runs where the student does
        return model

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.inputs = x
        return x, y

    def loss(self, model: nn.Module, loss: torch.Tensor) -> torch.Tensor:
        x = self.inputs
        if x is None:
            raise RuntimeError("LwF.loss called before LwF.batch saw a batch")
        if self.alpha == 0 or len(x) == 0:
            return loss
        net = model.model if isinstance(model, MaskedHead) else model
        new_logits = net(x).float()
        with torch.no_grad():
            old_logits = self.old(x).float()
        if self.classes is not None:
            new_logits, old_logits = new_logits[:, self.classes], old_logits[:, self.classes]
        term = (
            self.alpha
            * self.temperature**2
            * distillation_loss(new_logits, old_logits, self.temperature)
        )
        if loss.dim() == 1 and len(loss) == len(x):
            return loss + term
        return loss + term.mean()
