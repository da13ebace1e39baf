"""Opacus DP-SGD for one client's local round.

``PrivateTraining`` wraps the client's model, optimizer and data with Opacus's
``PrivacyEngine.make_private``: per-example gradients, clipping to ``max_grad_norm``,
Gaussian noise, Poisson-sampled batches; or, with ``grad_sample_mode: fast``, the same
clipped and noised sum without materialising per-example gradients
(:mod:`fedrobust.privacy.fastclip`). The accountant starts from the client's
history of earlier rounds (kept in the ClientApp's ``context.state`` and mirrored by the
server's ledger), so the epsilon it reports is cumulative.

Parameter-only terms of the loss (FedProx's proximal term, L1) are not per-example:
they are added to the privatised gradient after clipping and noise, which is
post-processing and keeps the guarantee. Gradient-norm clipping (``train.grad_clip``)
likewise applies to the noisy gradient.

Abadi et al. 2016, https://arxiv.org/abs/1607.00133; Opacus, https://opacus.ai
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, default_collate

from fedrobust.privacy.ledger import LedgerEntry, history, history_epsilon
from fedrobust.seeds import secret_seed
from fedrobust.train.device import model_device

if TYPE_CHECKING:
    from opacus.optimizers import DPOptimizer

    from fedrobust.privacy.fastclip import GhostClipper

GRAD_SAMPLE_MODES = ("hooks", "functorch", "ew", "ghost", "fast")
FAST_FALLBACK = "hooks"  # what 'fast' uses for a model it does not cover


class _Stacked(list):  # type: ignore[type-arg]
    """A batch gathered in one indexing: a one-item list holding the stacked tensors."""


class StackedDataset(TensorDataset):
    """A ``TensorDataset`` whose batches are gathered in one indexing per tensor.

    PyTorch's fetcher calls ``__getitems__`` with a batch's indices when it exists; the
    loader's sampler (Opacus's Poisson sampler, its physical-batch splitter, or a shuffle)
    and so its draws are unchanged, only the example-by-example fetch and collate (a third
    of a small model's DP epoch) are gone. An empty batch stays an empty list, which
    Opacus's collate turns into empty tensors.
    """

    def __getitems__(self, indices: list[int]) -> list:
        if not indices:
            return []
        index = torch.as_tensor(indices, dtype=torch.long)
        return _Stacked([tuple(tensor[index] for tensor in self.tensors)])


def collate_stacked(batch: list) -> list[torch.Tensor]:
    """The collate function of :class:`StackedDataset`'s batches."""
    if isinstance(batch, _Stacked):
        return list(batch[0])
    return default_collate(batch)


@dataclass(frozen=True)
class DPSGDRecipe:
    """This round's DP-SGD settings for one client.

    Parameters
    ----------
    noise_multiplier : float
        sigma (the client's own, when calibrated per client).
    max_grad_norm : float
        Per-example clipping norm.
    accountant : str
        rdp | prv | gdp.
    poisson_sampling : bool
        Poisson-sampled batches.
    grad_sample_mode : str
        hooks | functorch | ew | ghost (Opacus's engines) | fast (ghost norms and
        book-keeping, :mod:`fedrobust.privacy.fastclip`).
    max_physical_batch_size : int or None
        Split logical batches into physical ones of at most this size.
    delta : float
        The delta at which the client reports its epsilon.
    past : tuple[LedgerEntry, ...]
        The client's releases in earlier rounds.
    reproducible : bool
        Draw the noise and the Poisson batches from the round's public seed (research
        only: the noise can then be regenerated and subtracted). Default: from the
        operating system's secret entropy (:mod:`fedrobust.seeds`).
    """

    noise_multiplier: float
    max_grad_norm: float
    accountant: str = "rdp"
    poisson_sampling: bool = True
    grad_sample_mode: str = "hooks"
    max_physical_batch_size: int | None = None
    delta: float = 1e-5
    past: tuple[LedgerEntry, ...] = ()
    reproducible: bool = False


class PrivateTraining:
    """Model, optimizer, criterion and batches made private for one local round.

    Parameters
    ----------
    model : nn.Module
        The client's model; it is trained in place (hooks are removed by :meth:`close`).
    optimizer : torch.optim.Optimizer
        The optimizer over ``model``'s parameters.
    criterion : nn.Module
        Mean-reduced loss with a ``reduction`` attribute.
    x, y : torch.Tensor
        The client's training set.
    batch_size : int
        Expected logical batch size.
    recipe : DPSGDRecipe
        The DP settings.
    seed : int
        Seeds batch sampling and the noise when ``recipe.reproducible``; otherwise both
        come from secret entropy.
    penalty : callable, optional
        Parameter-only loss terms (see the module docstring).
    grad_clip : float, optional
        Clip the privatised gradient to this norm.

    Attributes
    ----------
    mode : str
        The engine in use: ``recipe.grad_sample_mode``, or ``hooks`` when ``fast`` does
        not cover a layer of ``model`` (a warning names the layer types).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        criterion: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        recipe: DPSGDRecipe,
        seed: int,
        penalty: Callable[[], torch.Tensor | None] = lambda: None,
        grad_clip: float | None = None,
    ) -> None:
        # Opacus (~1.3 s with torch.distributed) loads with the first private round only:
        # a plain round, and a ClientApp process that is never asked for DP, never pay it.
        from opacus import PrivacyEngine

        from fedrobust.privacy.fastclip import make_fast_private, uncovered_layers

        self.penalty = penalty
        self.grad_clip = grad_clip
        if recipe.grad_sample_mode not in GRAD_SAMPLE_MODES:
            raise ValueError(f"unknown grad_sample_mode '{recipe.grad_sample_mode}'")
        self.recipe = recipe
        self.mode = recipe.grad_sample_mode
        if self.mode == "fast" and (missing := uncovered_layers(model)):
            warnings.warn(
                f"privacy.dp.grad_sample_mode 'fast' does not cover {', '.join(missing)}: "
                f"this client trains the whole model with Opacus's '{FAST_FALLBACK}' "
                "instead (same clipping, noise and accounting; slower)",
                stacklevel=2,
            )
            self.mode = FAST_FALLBACK
        self.clipper: GhostClipper | None = None
        self.engine = PrivacyEngine(accountant=recipe.accountant)
        self.engine.accountant.history = history(list(recipe.past))
        self._past_steps = sum(steps for _, _, steps in self.engine.accountant.history)
        batch_seed, noise_seed = (
            (seed, seed + 1) if recipe.reproducible else (secret_seed(), secret_seed())
        )
        device = model_device(model)  # local_train moved it to train.device
        loader = DataLoader(
            StackedDataset(x, y),
            collate_fn=collate_stacked,
            batch_size=batch_size,
            shuffle=not recipe.poisson_sampling,
            generator=torch.Generator().manual_seed(batch_seed),  # the order: on the CPU
            pin_memory=device.type == "cuda",
        )
        # Opacus draws the noise on the gradients' device, from a generator living there
        noise_generator = torch.Generator(device=device).manual_seed(noise_seed)
        self.model, self.criterion = model, criterion
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # secure-RNG and experimental-accountant notices
            if self.mode == "fast":
                self.clipper, self.optimizer, self.loader = make_fast_private(
                    self.engine.accountant, model, optimizer, loader,
                    noise_multiplier=recipe.noise_multiplier,
                    max_grad_norm=recipe.max_grad_norm,
                    poisson_sampling=recipe.poisson_sampling,
                    noise_generator=noise_generator,
                )  # fmt: skip
            else:
                made = self.engine.make_private(
                    module=model,
                    optimizer=optimizer,
                    criterion=criterion,
                    data_loader=loader,
                    noise_multiplier=recipe.noise_multiplier,
                    max_grad_norm=recipe.max_grad_norm,
                    poisson_sampling=recipe.poisson_sampling,
                    grad_sample_mode=self.mode,
                    noise_generator=noise_generator,
                )
                if self.mode == "ghost":
                    self.model, self.optimizer, self.criterion, self.loader = made
                else:
                    self.model, self.optimizer, self.loader = made
        self.sample_rate = 1 / len(loader)

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of one local epoch (physical batches under a memory limit)."""
        with ExitStack() as stack:
            loader = self.loader
            if self.recipe.max_physical_batch_size is not None:
                from opacus.utils.batch_memory_manager import BatchMemoryManager

                loader = stack.enter_context(
                    BatchMemoryManager(
                        data_loader=self.loader,
                        max_physical_batch_size=self.recipe.max_physical_batch_size,
                        optimizer=self.optimizer,
                    )
                )
            for xb, yb in loader:
                if len(yb) == 0 and self.mode == "ew":
                    self._empty_step()  # expanded weights cannot run a batch of 0
                    continue
                yield xb, yb

    @contextmanager
    def hooks_paused(self) -> Iterator[None]:
        """Run the model without recording per-sample gradients (e.g. to craft attacks)."""
        if self.clipper is not None:
            with self.clipper.paused():
                yield
            return
        disable = getattr(self.model, "disable_hooks", None)
        if disable is None:  # expanded weights: nothing is recorded outside its forward
            yield
            return
        disable()
        try:
            yield
        finally:
            self.model.enable_hooks()  # type: ignore[operator]

    def backward(self, loss: torch.Tensor) -> None:
        """The backward pass of the batch's (mean-reduced) loss, as the engine needs it."""
        if self.clipper is not None:
            self.clipper.backward(loss)
        else:
            loss.backward()

    def step(self) -> bool:
        """Clip, noise and apply the gradients of the last backward pass.

        The penalty's gradient joins the privatised one. Returns False for a physical
        batch that only accumulated.
        """
        optimizer: DPOptimizer = self.optimizer  # type: ignore[assignment]
        if not optimizer.pre_step():
            return False
        extra = self.penalty()
        if extra is not None:
            extra.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(optimizer.params, self.grad_clip)
        optimizer.original_optimizer.step()
        return True

    def _empty_step(self) -> None:
        """An empty Poisson batch: a step of noise alone, as Opacus takes it elsewhere."""
        self.optimizer.zero_grad(set_to_none=True)
        for p in self.optimizer.params:  # type: ignore[attr-defined]
            p.grad_sample = p.new_zeros((0, *p.shape))
        self.step()

    def entry(self, rnd: int) -> LedgerEntry:
        """This round's release, as the accountant counted it."""
        steps = sum(s for _, _, s in self.engine.accountant.history) - self._past_steps
        return LedgerEntry(self.recipe.noise_multiplier, self.sample_rate, steps, rnd)

    def epsilon(self) -> float:
        """Cumulative epsilon of this client after this round, from Opacus's accountant."""
        if not self.engine.accountant.history:
            return 0.0
        accountant = self.engine.accountant
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return history_epsilon(accountant.history, self.recipe.delta, accountant.mechanism())

    def close(self) -> None:
        """Remove the hooks and per-sample buffers from the model."""
        if self.clipper is not None:
            self.clipper.close()
        else:
            self.model._close()  # type: ignore[operator]
