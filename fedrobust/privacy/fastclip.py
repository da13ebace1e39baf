"""DP-SGD without per-example gradients: ``privacy.dp.grad_sample_mode: fast``.

Opacus's engines materialise every example's gradient (a tensor the size of the model
per example) to clip it. Clipping only needs each example's gradient *norm* and the
*weighted sum* of the gradients, and both follow from what the backward pass already
has: each layer's input ``a`` (recorded in the forward pass) and the gradient ``g`` of
its output.

Per-example norms (ghost norm, Li et al. 2022, https://arxiv.org/abs/2110.05679). For
a linear map with ``a_i`` of shape (T, d_in) and ``g_i`` of shape (T, d_out) (T
positions per example: 1 for a dense layer on vectors, the H_out * W_out patches of a
convolution after unfolding, im2col), example i's weight gradient is ``g_i^T a_i`` and

    ||g_i^T a_i||_F^2 = sum_{t,s} (a_i a_i^T)_{ts} (g_i g_i^T)_{ts},

T^2 (d_in + d_out) work instead of T d_in d_out. With T = 1 it is
``||a_i||^2 ||g_i||^2``; when T (d_in + d_out) >= d_in d_out (small layers, large
feature maps: the convolutions of the shipped CNNs on MNIST) the per-example weight
gradient is smaller than the Gram matrices and is formed directly, one layer at a time
(a batched matrix product; for a convolution one grouped convolution with the batch as
groups, without unfolding), and the clipped sum is its weighted sum. The bias
gradient is ``sum_t g_i,t``. GroupNorm, LayerNorm and PReLU have per-channel
parameters: their per-example gradients are small and are computed directly.

Clipped sum (book-keeping, Bu et al. 2023, https://arxiv.org/abs/2210.00038). With
``w_i = min(1, C / (||grad_i|| + 1e-6))`` (Opacus's clipping factor), the clipped sum
of a linear map's weight gradients is ``sum_i w_i g_i^T a_i = (w * g)^T a``: one matrix
product with the ``a`` and ``g`` already kept, no second backward pass. We chose
book-keeping over a second, re-weighted backward pass because it needs no per-example
loss (every loss and loss plugin works as it is, as with ``hooks``), the forward pass
is not re-run (dropout masks stay those of the first pass) and it costs one weight
gradient's worth of work; the backward pass itself asks autograd for the layer output
gradients only (``torch.autograd.grad``), so no plain weight gradient is formed
besides the clipped sum.

Noise, the scaling by the expected batch size, Poisson batches, physical batches and
the accountant's step are Opacus's own (:class:`FastDPOptimizer` is a
:class:`~opacus.optimizers.DPOptimizer` whose clipping step uses the above), so with the
same noise generator both paths draw the same noise in the same order, and the
accountant counts the same (sigma, sample rate, steps).

Covered layers: ``nn.Linear``, ``nn.Conv2d`` (groups 1, zero padding given as numbers),
``nn.GroupNorm``, ``nn.LayerNorm`` and ``nn.PReLU``; layers without trainable
parameters (activations, pooling, dropout, flatten) need nothing. A model with a
trainable parameter anywhere else is not covered (:func:`uncovered_layers`):
:class:`~fedrobust.privacy.dpsgd.PrivateTraining` then warns, naming the layer types,
and trains the whole model with Opacus's ``hooks`` instead. A fallback rather than a
refusal: ``fast`` changes the cost, not the mechanism (``hooks`` computes the same
clipped sum, noise and ledger), so such a run keeps its guarantee and only runs slower.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from opacus.accountants import IAccountant
from opacus.data_loader import DPDataLoader
from opacus.optimizers import DPOptimizer
from torch import nn
from torch.utils.data import DataLoader

CLIP_EPS = 1e-6  # Opacus's: factor = C / (norm + 1e-6), at most 1


class _Layer:
    """One covered layer's part of a batch: per-example squared norms, weighted sums."""

    params: list[nn.Parameter]

    def sq_norms(self) -> torch.Tensor:
        """(B,) squared norms of each example's gradient of this layer's parameters."""
        raise NotImplementedError

    def weighted_sums(self, w: torch.Tensor) -> list[torch.Tensor]:
        """``sum_i w_i grad_i`` for each of :attr:`params`, in their shapes."""
        raise NotImplementedError


class _Matmul(_Layer):
    """A linear map ``out = a W^T + b`` over T positions per example (dense or unfolded conv).

    Parameters
    ----------
    weight, bias : nn.Parameter or None
        The layer's parameters (``None``: absent or frozen).
    a : torch.Tensor
        (B, T, d_in) inputs.
    g : torch.Tensor
        (B, T, d_out) gradients of the outputs, per example.
    """

    def __init__(
        self,
        weight: nn.Parameter | None,
        bias: nn.Parameter | None,
        a: torch.Tensor,
        g: torch.Tensor,
    ) -> None:
        self.weight, self.bias, self.a, self.g = weight, bias, a, g
        self.params = [p for p in (weight, bias) if p is not None]
        self.per_example: torch.Tensor | None = None  # (B, d_out, d_in) on the direct route

    def sq_norms(self) -> torch.Tensor:
        a, g = self.a, self.g
        _, positions, d_in = a.shape
        d_out = g.shape[-1]
        total = a.new_zeros(a.shape[0])
        if self.weight is not None:
            if positions == 1:
                total += a.square().sum((1, 2)) * g.square().sum((1, 2))
            elif positions * (d_in + d_out) < d_in * d_out:  # ghost norm
                gram_a = torch.bmm(a, a.transpose(1, 2))
                gram_g = torch.bmm(g, g.transpose(1, 2))
                total += (gram_a * gram_g).sum((1, 2))
            else:  # the per-example gradient is the smaller object
                self.per_example = torch.bmm(g.transpose(1, 2), a)
                total += self.per_example.square().sum((1, 2))
        if self.bias is not None:
            total += g.sum(1).square().sum(1)
        return total

    def weighted_sums(self, w: torch.Tensor) -> list[torch.Tensor]:
        a, g = self.a, self.g
        sums = []
        if self.weight is not None:
            if self.per_example is not None:
                grad = torch.einsum("b,boi->oi", w, self.per_example)
            else:  # book-keeping: (w * g)^T a over all examples and positions
                weighted = (g * w[:, None, None]).reshape(-1, g.shape[-1])
                grad = weighted.T @ a.reshape(-1, a.shape[-1])
            sums.append(grad.reshape(self.weight.shape))
        if self.bias is not None:
            sums.append(w @ g.sum(1))
        return sums


class _Direct(_Layer):
    """A layer whose per-example gradients are small (per-channel): formed directly."""

    def __init__(self, grads: dict[nn.Parameter, torch.Tensor]) -> None:
        self.params = list(grads)
        self.grads = list(grads.values())  # (B, *p.shape) each

    def sq_norms(self) -> torch.Tensor:
        return sum(g.reshape(len(g), -1).square().sum(1) for g in self.grads)  # type: ignore[return-value]

    def weighted_sums(self, w: torch.Tensor) -> list[torch.Tensor]:
        return [torch.einsum("b,b...->...", w, g) for g in self.grads]


def _trainable(p: nn.Parameter | None) -> nn.Parameter | None:
    return p if p is not None and p.requires_grad else None


def _positions(parts: list[torch.Tensor]) -> torch.Tensor:
    """(B, T, d) parts of several calls as more positions (no copy for one call)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


def _linear(module: nn.Module, a: list[torch.Tensor], g: list[torch.Tensor]) -> _Layer:
    assert isinstance(module, nn.Linear)
    batch = len(a[0])
    inputs = _positions([x.reshape(batch, -1, module.in_features) for x in a])
    grads = _positions([y.reshape(batch, -1, module.out_features) for y in g])
    return _Matmul(_trainable(module.weight), _trainable(module.bias), inputs, grads)


class _Conv2d(_Layer):
    """A convolution: ghost norms of the unfolded input (im2col) while the feature maps
    are small; otherwise each example's weight gradient, from one grouped convolution
    with the batch as groups (no unfolding), which is then the smaller object.

    Parameters
    ----------
    module : nn.Conv2d
        The layer (groups 1, numeric zero padding).
    a, g : list[torch.Tensor]
        Its inputs (B, C_in, H, W) and output gradients (B, C_out, H', W'), per call.
    """

    def __init__(self, module: nn.Conv2d, a: list[torch.Tensor], g: list[torch.Tensor]) -> None:
        self.module, self.a, self.g = module, a, g
        self.weight, self.bias = _trainable(module.weight), _trainable(module.bias)
        self.params = [p for p in (self.weight, self.bias) if p is not None]
        self.per_example: torch.Tensor | None = None
        self.ghost: _Matmul | None = None
        positions = sum(y[0, 0].numel() for y in g)
        d_in, d_out = module.weight[0].numel(), module.out_channels
        if self.weight is not None and positions * (d_in + d_out) < d_in * d_out:
            batch = len(a[0])
            unfolded = [
                F.unfold(
                    x,
                    module.kernel_size,
                    dilation=module.dilation,
                    padding=module.padding,  # type: ignore[arg-type]  (numbers: _conv2d_covered)
                    stride=module.stride,
                ).transpose(1, 2)
                for x in a
            ]
            grads = [y.reshape(batch, d_out, -1).transpose(1, 2) for y in g]
            self.ghost = _Matmul(self.weight, None, _positions(unfolded), _positions(grads))

    def _per_example(self) -> torch.Tensor:
        m, batch = self.module, len(self.a[0])
        shape = (batch * m.out_channels, m.in_channels, *m.kernel_size)
        per = sum(
            torch.nn.grad.conv2d_weight(
                x.reshape(1, -1, *x.shape[2:]),
                shape,
                y.reshape(1, -1, *y.shape[2:]),
                stride=m.stride,
                padding=m.padding,
                dilation=m.dilation,
                groups=batch,
            )  # fmt: skip
            for x, y in zip(self.a, self.g, strict=True)
        )
        return per.reshape(batch, m.out_channels, -1)  # type: ignore[union-attr]

    def sq_norms(self) -> torch.Tensor:
        total = self.a[0].new_zeros(len(self.a[0]))
        if self.ghost is not None:
            total += self.ghost.sq_norms()
        elif self.weight is not None:
            self.per_example = self._per_example()
            total += self.per_example.square().sum((1, 2))
        if self.bias is not None:
            total += self._bias_grads().square().sum(1)
        return total

    def _bias_grads(self) -> torch.Tensor:
        return sum(y.sum((2, 3)) for y in self.g)  # type: ignore[return-value]

    def weighted_sums(self, w: torch.Tensor) -> list[torch.Tensor]:
        sums = []
        if self.ghost is not None:
            sums += self.ghost.weighted_sums(w)
        elif self.weight is not None and self.per_example is not None:
            sums.append(torch.einsum("b,boi->oi", w, self.per_example).reshape(self.weight.shape))
        if self.bias is not None:
            sums.append(w @ self._bias_grads())
        return sums


def _conv2d(module: nn.Module, a: list[torch.Tensor], g: list[torch.Tensor]) -> _Layer:
    assert isinstance(module, nn.Conv2d)
    return _Conv2d(module, a, g)


def _group_norm(module: nn.Module, a: list[torch.Tensor], g: list[torch.Tensor]) -> _Layer:
    assert isinstance(module, nn.GroupNorm)
    weight, bias = _trainable(module.weight), _trainable(module.bias)
    grads: dict[nn.Parameter, torch.Tensor] = {}
    for x, y in zip(a, g, strict=True):
        shape = (len(x), module.num_channels, -1)
        if weight is not None:
            normed = F.group_norm(x, module.num_groups, eps=module.eps)
            _add(grads, weight, (y * normed).reshape(shape).sum(2))
        if bias is not None:
            _add(grads, bias, y.reshape(shape).sum(2))
    return _Direct(grads)


def _layer_norm(module: nn.Module, a: list[torch.Tensor], g: list[torch.Tensor]) -> _Layer:
    assert isinstance(module, nn.LayerNorm)
    weight, bias = _trainable(module.weight), _trainable(module.bias)
    shape = tuple(module.normalized_shape)
    grads: dict[nn.Parameter, torch.Tensor] = {}
    for x, y in zip(a, g, strict=True):
        if weight is not None:
            normed = F.layer_norm(x, shape, eps=module.eps)
            _add(grads, weight, (y * normed).reshape(len(x), -1, *shape).sum(1))
        if bias is not None:
            _add(grads, bias, y.reshape(len(x), -1, *shape).sum(1))
    return _Direct(grads)


def _prelu(module: nn.Module, a: list[torch.Tensor], g: list[torch.Tensor]) -> _Layer:
    assert isinstance(module, nn.PReLU)
    grads: dict[nn.Parameter, torch.Tensor] = {}
    if module.weight.requires_grad:
        channels = module.num_parameters
        for x, y in zip(a, g, strict=True):
            slope = y * torch.where(x < 0, x, torch.zeros_like(x))  # d out / d weight
            per = slope.reshape(len(x), -1).sum(1, keepdim=True) if channels == 1 else \
                slope.reshape(len(x), channels, -1).sum(2)  # fmt: skip
            _add(grads, module.weight, per)
    return _Direct(grads)


def _add(grads: dict[nn.Parameter, torch.Tensor], p: nn.Parameter, g: torch.Tensor) -> None:
    grads[p] = g if p not in grads else grads[p] + g


def _conv2d_covered(module: nn.Module) -> bool:
    assert isinstance(module, nn.Conv2d)
    return (
        module.groups == 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


Rule = Callable[[nn.Module, list[torch.Tensor], list[torch.Tensor]], _Layer]
RULES: dict[type[nn.Module], Rule] = {
    nn.Linear: _linear,
    nn.Conv2d: _conv2d,
    nn.GroupNorm: _group_norm,
    nn.LayerNorm: _layer_norm,
    nn.PReLU: _prelu,
}
CONDITIONS: dict[type[nn.Module], Callable[[nn.Module], bool]] = {nn.Conv2d: _conv2d_covered}


def uncovered_layers(model: nn.Module) -> list[str]:
    """Types of the layers with trainable parameters that ``fast`` cannot clip.

    A layer is covered when its exact type has a rule here (a subclass may change the
    forward pass, so it is not) and, for ``Conv2d``, groups 1 and zero padding given as
    numbers. Empty when the whole model is covered.
    """
    missing: set[str] = set()
    for module in model.modules():
        if not any(p.requires_grad for p in module.parameters(recurse=False)):
            continue
        rule_type = type(module)
        if rule_type not in RULES:
            missing.add(rule_type.__name__)
        elif not CONDITIONS.get(rule_type, lambda _: True)(module):
            missing.add(f"{rule_type.__name__} ({module.extra_repr()})")
    return sorted(missing)


@dataclass
class _Calls:
    """A covered module's forward calls since the last backward pass."""

    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)


class GhostClipper:
    """Records each covered layer's inputs; turns a backward pass into clipped sums.

    Parameters
    ----------
    model : nn.Module
        A model :func:`uncovered_layers` has nothing against; forward hooks are added to
        its covered layers (removed by :meth:`close`).

    Notes
    -----
    The training loop calls :meth:`backward` instead of ``loss.backward()``: it asks
    autograd for the gradients of the recorded layer outputs only, so no ``p.grad`` is
    written. ``loss`` must be the mean over the batch of per-example terms (as for
    Opacus's ``loss_reduction="mean"``): each example's gradient is B times its part
    of the gradient of ``loss`` (the factor B goes on the norms and the clipping
    weights, not on the recorded tensors). A module run several times in one forward pass (weight
    sharing) is handled: its calls are more positions of the same example.
    """

    def __init__(self, model: nn.Module) -> None:
        missing = uncovered_layers(model)
        if missing:
            raise ValueError(f"fast clipping does not cover {', '.join(missing)}")
        self.modules = [
            m
            for m in model.modules()
            if type(m) in RULES and any(p.requires_grad for p in m.parameters(recurse=False))
        ]
        self.recording = True
        self.calls: dict[nn.Module, _Calls] = {}
        self.layers: list[_Layer] | None = None
        self.batch_size = 0
        self.handles = [m.register_forward_hook(self._record) for m in self.modules]

    def _record(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], out: object) -> None:
        if not (self.recording and torch.is_grad_enabled()):
            return
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            return
        calls = self.calls.setdefault(module, _Calls())
        calls.inputs.append(inputs[0].detach())
        calls.outputs.append(out)
        calls.versions.append(out._version)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Forward passes that are not the training batch's (e.g. crafting attacks)."""
        before, self.recording = self.recording, False
        try:
            yield
        finally:
            self.recording = before

    def reset(self) -> None:
        """Forget recorded calls and any batch not yet clipped."""
        self.calls = {}
        self.layers = None

    def backward(self, loss: torch.Tensor) -> None:
        """The backward pass of the batch's mean loss: every covered layer's output gradients.

        Raises
        ------
        RuntimeError
            If a recorded output was changed in place (an in-place activation after a
            covered layer): its gradient would be the activation's.
        """
        if self.layers is not None:
            raise RuntimeError("two backward passes without an optimizer step in between")
        calls, self.calls = self.calls, {}
        pairs = [(m, i) for m, c in calls.items() for i in range(len(c.outputs))]
        outputs = [calls[m].outputs[i] for m, i in pairs]
        for m, i in pairs:
            if calls[m].outputs[i]._version != calls[m].versions[i]:
                raise RuntimeError(
                    f"the output of {type(m).__name__} was changed in place after the layer "
                    "(in-place activation?): privacy.dp.grad_sample_mode 'fast' cannot clip it"
                )
        grads = (
            torch.autograd.grad(loss, outputs, allow_unused=True)
            if outputs and loss.requires_grad
            else [None] * len(outputs)
        )
        kept: dict[nn.Module, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        batch = None
        for (m, i), grad in zip(pairs, grads, strict=True):
            if grad is None:  # a call that does not reach the loss
                continue
            x = calls[m].inputs[i]
            batch = len(x) if batch is None else batch
            if len(x) != batch:
                raise RuntimeError("covered layers saw batches of different sizes")
            kept.setdefault(m, ([], []))
            kept[m][0].append(x.float())
            kept[m][1].append(grad.float())
        self.batch_size = batch or 0
        self.layers = [  # an empty Poisson batch: no example, a zero sum
            RULES[type(m)](m, inputs, grads) for m, (inputs, grads) in kept.items() if batch
        ]

    def norms(self) -> torch.Tensor:
        """(B,) norms of each example's whole gradient, for the last :meth:`backward`."""
        if self.layers is None:
            raise RuntimeError("no backward pass to clip")
        total = torch.zeros(self.batch_size)
        for layer in self.layers:
            total = total + layer.sq_norms()
        return total.sqrt() * self.batch_size  # the loss is a mean: B times its gradient

    def clipped_sum(self, max_grad_norm: float) -> dict[nn.Parameter, torch.Tensor]:
        """``sum_i min(1, C / (||grad_i|| + 1e-6)) grad_i`` per parameter; consumes the batch.

        Parameters absent from the result (layers the batch did not reach, or no backward
        pass at all) have a zero sum.
        """
        if self.layers is None:
            return {}
        factor = (max_grad_norm / (self.norms() + CLIP_EPS)).clamp(max=1.0)
        weights = factor * self.batch_size  # on the recorded gradients, 1 / B of each example's
        sums: dict[nn.Parameter, torch.Tensor] = {}
        for layer in self.layers:
            for p, grad in zip(layer.params, layer.weighted_sums(weights), strict=True):
                sums[p] = grad.to(p.dtype) if p not in sums else sums[p] + grad.to(p.dtype)
        self.layers = None
        return sums

    def close(self) -> None:
        """Remove the forward hooks."""
        for handle in self.handles:
            handle.remove()
        self.handles = []
        self.reset()


class FastDPOptimizer(DPOptimizer):
    """Opacus's DP optimizer with the clipping step of :class:`GhostClipper`.

    Noise (``noise_multiplier * max_grad_norm``, drawn from ``generator`` parameter by
    parameter), the division by the expected batch size, skipped steps of physical
    batches and the accountant's step hook are :class:`~opacus.optimizers.DPOptimizer`'s.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The wrapped optimizer.
    clipper : GhostClipper
        Holds the batch's clipped sums after its :meth:`GhostClipper.backward`.
    **kwargs
        ``DPOptimizer``'s: noise_multiplier, max_grad_norm, expected_batch_size,
        generator.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, *, clipper: GhostClipper, **kwargs: object
    ) -> None:
        super().__init__(optimizer, **kwargs)  # type: ignore[arg-type]
        self.clipper = clipper

    @property
    def accumulated_iterations(self) -> int:
        """One batch per clipping step (physical batches are summed as they come)."""
        return 1

    def clip_and_accumulate(self) -> None:
        """Add the batch's clipped sum to ``p.summed_grad`` (zero where it has none)."""
        sums = self.clipper.clipped_sum(self.max_grad_norm)
        for p in self.params:
            grad = sums.get(p)
            if grad is None:
                grad = torch.zeros_like(p)
            p.summed_grad = grad if p.summed_grad is None else p.summed_grad + grad

    def pre_step(self, closure: Callable[[], float] | None = None) -> bool:
        """Clip; unless the batch is a non-final physical batch, noise, scale and count."""
        self.clip_and_accumulate()
        if self._check_skip_next_step():
            self._is_last_step_skipped = True
            return False
        self.add_noise()
        self.scale_grad()
        if self.step_hook:
            self.step_hook(self)
        self._is_last_step_skipped = False
        return True

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Clear gradients and the clipper's records (a new batch starts)."""
        self.clipper.reset()
        super().zero_grad(set_to_none)


def make_fast_private(
    accountant: IAccountant,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader: DataLoader,
    *,
    noise_multiplier: float,
    max_grad_norm: float,
    poisson_sampling: bool,
    noise_generator: torch.Generator,
) -> tuple[GhostClipper, FastDPOptimizer, DataLoader]:
    """What ``PrivacyEngine.make_private`` builds, with ghost clipping instead of hooks.

    As Opacus does: a Poisson loader at rate ``1 / len(data_loader)`` drawing from
    ``data_loader``'s generator, the expected batch size ``int(n * rate)``, and the
    accountant stepped at that rate after every noisy step.

    Returns
    -------
    tuple
        The clipper (hooks on ``model``), the optimizer and the loader.
    """
    clipper = GhostClipper(model)
    loader = DPDataLoader.from_data_loader(data_loader) if poisson_sampling else data_loader
    sample_rate = 1 / len(loader)
    private = FastDPOptimizer(
        optimizer,
        clipper=clipper,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        expected_batch_size=int(len(loader.dataset) * sample_rate),  # type: ignore[arg-type]
        generator=noise_generator,
    )
    private.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=sample_rate))
    return clipper, private, loader
