"""Adversarial training as local-loop plugins: each batch is attacked against the
client's current model.

- ``pgd_at``: replace a share (``ratio``) of each batch by PGD examples (Madry et al.
  2018, https://arxiv.org/abs/1706.06083);
- ``fgsm_rs``: the same with one FGSM step from a random start, "fast is better than
  free" (Wong, Rice & Kolter 2020, https://arxiv.org/abs/2001.03994; torchattacks FFGSM);
- ``trades``: clean cross-entropy plus ``beta`` times the KL divergence between the
  model's outputs on the clean batch and on a KL-maximising perturbation (Zhang et al.
  2019, https://arxiv.org/abs/1901.08573; torchattacks TPGD);
- ``mart``: a boosted cross-entropy on PGD examples plus ``beta`` times the clean-to-
  adversarial KL divergence weighted by how badly the clean example is classified
  (Wang et al. 2020, https://openreview.net/forum?id=rklOg6EFwS).

Replacing examples keeps one row per example, so DP-SGD's per-example clipping and
accounting hold. Under Opacus the local loop pauses the per-sample-gradient hooks while a
plugin's ``batch`` runs: generation adds no grad_sample and no accountant step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fedrobust.attacks import create_attack
from fedrobust.train.plugins import TrainPlugin


class _AttacksLocalModel(TrainPlugin):
    """Keeps the client's model, which the attacks are crafted against."""

    model: nn.Module | None = None

    def before_training(self, model: nn.Module) -> nn.Module:
        self.model = model
        return model


class AdversarialExamples(_AttacksLocalModel):
    """pgd_at / fgsm_rs: a share of each batch replaced by adversarial examples.

    Parameters
    ----------
    attack : str
        ``pgd`` / ``pgdl2`` (pgd_at) or ``ffgsm`` (fgsm_rs).
    eps, alpha : float
        Budget and step size.
    steps : int
        Attack iterations.
    ratio : float
        Share of each batch replaced.
    num_classes : int
        Number of classes.
    seed : int
        Seeds which examples are replaced.
    """

    def __init__(
        self,
        attack: str,
        eps: float,
        alpha: float,
        steps: int,
        ratio: float,
        num_classes: int,
        seed: int,
    ) -> None:
        self.attack, self.eps, self.alpha, self.steps, self.ratio = attack, eps, alpha, steps, ratio
        self.num_classes = num_classes
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.model is None or len(y) == 0:
            return x, y
        chosen = (torch.rand(len(y), generator=self.generator) < self.ratio).to(x.device)
        if not chosen.any():
            return x, y
        attack = create_attack(
            self.attack, self.model, self.eps, steps=self.steps, alpha=self.alpha,
            norm="l2" if self.attack == "pgdl2" else "linf", num_classes=self.num_classes,
        )  # fmt: skip
        x = x.clone()
        x[chosen] = attack(x[chosen], y[chosen]).detach()
        return x, y


class Trades(_AttacksLocalModel):
    """TRADES: clean loss plus ``beta * KL(f(x) || f(x_adv))``.

    Parameters
    ----------
    eps, alpha : float
        Budget and step size of the KL-maximising perturbation (torchattacks TPGD).
    steps : int
        Its iterations.
    beta : float
        Weight of the KL term.
    """

    def __init__(self, eps: float, alpha: float, steps: int, beta: float) -> None:
        self.eps, self.alpha, self.steps, self.beta = eps, alpha, steps, beta
        self.clean: torch.Tensor | None = None
        self.adversarial: torch.Tensor | None = None

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.model is None or len(y) == 0:
            self.clean = self.adversarial = None
            return x, y
        attack = create_attack("tpgd", self.model, self.eps, steps=self.steps, alpha=self.alpha)
        self.clean, self.adversarial = x, attack(x, y).detach()
        return x, y

    def loss(self, model: nn.Module, loss: torch.Tensor) -> torch.Tensor:
        if self.clean is None or self.adversarial is None or self.beta == 0:
            return loss
        log_adv = F.log_softmax(model(self.adversarial), dim=1)
        clean = F.softmax(model(self.clean), dim=1)
        kl = F.kl_div(log_adv, clean, reduction="batchmean")
        return loss + self.beta * kl


class Mart(_AttacksLocalModel):
    """MART: misclassification-aware adversarial training (Wang et al. 2020).

    The batch is replaced by its PGD examples ``x'`` (so the recipe's loss is the
    cross-entropy on ``x'``), and ``loss`` adds, averaged over the batch,

    - the boost ``-log(1 + 1e-4 - max_{k != y} p_k(x'))``, which with the cross-entropy
      makes the paper's boosted cross-entropy (BCE) on ``x'``; the ``1e-4`` (as in the
      authors' implementation) keeps it finite where the float32 softmax saturates to 1;
    - ``beta * KL(p(x) || p(x')) * (1 - p_y(x))``: the robustness term, weighted up for
      examples the model misclassifies when clean.

    Parameters
    ----------
    eps, alpha : float
        Budget and step size of the PGD examples (L-inf, cross-entropy).
    steps : int
        PGD iterations.
    beta : float
        Weight of the KL term (the paper's lambda).
    """

    def __init__(self, eps: float, alpha: float, steps: int, beta: float) -> None:
        self.eps, self.alpha, self.steps, self.beta = eps, alpha, steps, beta
        self.clean: torch.Tensor | None = None
        self.adversarial: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.model is None or len(y) == 0:
            self.clean = self.adversarial = self.labels = None
            return x, y
        attack = create_attack("pgd", self.model, self.eps, steps=self.steps, alpha=self.alpha)
        self.clean, self.labels = x, y
        self.adversarial = attack(x, y).detach()
        return self.adversarial, y

    def loss(self, model: nn.Module, loss: torch.Tensor) -> torch.Tensor:
        if self.clean is None or self.adversarial is None or self.labels is None:
            return loss
        return loss + mart_terms(model(self.clean), model(self.adversarial), self.labels, self.beta)


#: Keeps MART's boost ``-log(1 + offset - p)`` finite where the softmax saturates to 1.
BOOST_OFFSET = 1e-4


def mart_terms(
    clean_logits: torch.Tensor, adv_logits: torch.Tensor, y: torch.Tensor, beta: float
) -> torch.Tensor:
    """MART's loss beyond the cross-entropy on ``x'``: the boost plus the weighted KL.

    Both are batch means; see :class:`Mart`.
    """
    adv_log_p = F.log_softmax(adv_logits, dim=1)
    adv_p = adv_log_p.exp()
    true = F.one_hot(y, adv_logits.shape[1]).bool()
    runner_up = adv_p.masked_fill(true, 0.0).amax(dim=1)
    boost = -torch.log(1.0 + BOOST_OFFSET - runner_up)
    clean_log_p = F.log_softmax(clean_logits, dim=1)
    clean_p = clean_log_p.exp()
    kl = (clean_p * (clean_log_p - adv_log_p)).sum(dim=1)
    misclassified = 1.0 - clean_p.gather(1, y[:, None]).squeeze(1)
    return boost.mean() + beta * (kl * misclassified).mean()
