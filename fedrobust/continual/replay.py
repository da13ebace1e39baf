"""Experience replay: a reservoir-sampled memory and a plugin that mixes it into batches.

Reservoir sampling (algorithm R): Vitter 1985, "Random sampling with a reservoir",
https://doi.org/10.1145/3147.3165. Experience replay with a small reservoir memory:
Chaudhry et al. 2019, https://arxiv.org/abs/1902.10486.
"""

from __future__ import annotations

import torch

from fedrobust.train.plugins import TrainPlugin


class ReservoirBuffer:
    """A fixed-capacity memory holding a uniform sample of every example streamed in.

    After ``n`` examples have been added, each of them is in the buffer with probability
    ``min(1, capacity / n)`` (algorithm R, applied exactly to each example in turn).

    Parameters
    ----------
    capacity : int
        Most examples held.
    seed : int
        Seeds the replacement draws.

    Notes
    -----
    Storage is allocated on the first :meth:`add`, with that batch's per-example shape,
    dtype and device; later batches are converted to them.
    """

    def __init__(self, capacity: int, seed: int) -> None:
        if capacity < 1:
            raise ValueError(f"ReservoirBuffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.seen = 0
        self.generator = torch.Generator().manual_seed(seed)
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None

    def __len__(self) -> int:
        return min(self.seen, self.capacity)

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Stream a batch of examples through the reservoir, one example at a time.

        Parameters
        ----------
        x : torch.Tensor
            Inputs, first axis: examples.
        y : torch.Tensor
            Their labels.
        """
        if len(x) != len(y):
            raise ValueError(f"add: {len(x)} inputs but {len(y)} labels")
        if len(x) == 0:
            return
        if self.x is None or self.y is None:
            self.x = torch.zeros((self.capacity, *x.shape[1:]), dtype=x.dtype, device=x.device)
            self.y = torch.zeros((self.capacity, *y.shape[1:]), dtype=y.dtype, device=y.device)
        elif tuple(x.shape[1:]) != tuple(self.x.shape[1:]):
            raise ValueError(
                f"add: examples of shape {tuple(x.shape[1:])}, "
                f"the buffer holds {tuple(self.x.shape[1:])}"
            )
        x = x.to(self.x.device, self.x.dtype)
        y = y.to(self.y.device, self.y.dtype)
        # The k-th example of the batch is example number seen + k of the stream. While the
        # buffer has room it is stored; afterwards algorithm R draws j uniform in
        # [0, seen + k] and stores it in slot j if j < capacity. The draws do not depend on
        # the buffer's contents, so they are made up front; applying the replacements in
        # stream order keeps the algorithm exact (a later example overwrites an earlier).
        index = self.seen + torch.arange(len(x), dtype=torch.float64)
        uniform = torch.rand(len(x), generator=self.generator, dtype=torch.float64)
        slots = torch.floor(uniform * (index + 1)).long().tolist()
        for k, slot in enumerate(slots):
            n = self.seen + k
            if n < self.capacity:
                slot = n
            elif slot >= self.capacity:
                continue
            self.x[slot] = x[k]
            self.y[slot] = y[k]
        self.seen += len(x)

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``min(n, len(self))`` stored examples uniformly without replacement.

        Parameters
        ----------
        n : int
            Examples wanted.
        generator : torch.Generator, optional
            Source of randomness (default: the buffer's own).

        Returns
        -------
        (torch.Tensor, torch.Tensor)
            Inputs and labels (copies).
        """
        if self.x is None or self.y is None:
            raise ValueError("sample: the buffer is empty")
        size = len(self)
        order = torch.randperm(size, generator=generator or self.generator)[: max(n, 0)]
        order = order.to(self.x.device)
        return self.x[order], self.y[order]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The buffer as tensors (e.g. for a Flower ``ArrayRecord`` in ``context.state``).

        Keys: ``x`` and ``y`` (the ``len(self)`` stored examples), ``seen`` and
        ``capacity`` (0-dim int64) and ``rng`` (the generator state, uint8).
        """
        size = len(self)
        empty = torch.zeros(0)
        return {
            "x": empty if self.x is None else self.x[:size].clone(),
            "y": empty.long() if self.y is None else self.y[:size].clone(),
            "seen": torch.tensor(self.seen, dtype=torch.int64),
            "capacity": torch.tensor(self.capacity, dtype=torch.int64),
            "rng": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned (capacity must match)."""
        capacity = int(state["capacity"])
        if capacity != self.capacity:
            raise ValueError(f"state has capacity {capacity}, this buffer {self.capacity}")
        self.seen = int(state["seen"])
        self.generator.set_state(state["rng"].to(torch.uint8).cpu())
        x, y = state["x"], state["y"]
        if self.seen == 0:
            self.x = self.y = None
            return
        if len(x) != len(self) or len(y) != len(self):
            raise ValueError(f"state holds {len(x)} examples; seen={self.seen} implies {len(self)}")
        self.x = torch.zeros((self.capacity, *x.shape[1:]), dtype=x.dtype, device=x.device)
        self.y = torch.zeros((self.capacity, *y.shape[1:]), dtype=y.dtype, device=y.device)
        self.x[: len(x)] = x
        self.y[: len(y)] = y


class Replay(TrainPlugin):
    """Experience replay: appends ``round(ratio * len(batch))`` remembered examples to a batch.

    The plugin only reads the buffer; the caller fills it (e.g. ``buffer.add(x, y)`` with a
    task's data once the task is over), so repeated epochs do not skew the reservoir.

    Parameters
    ----------
    buffer : ReservoirBuffer
        The memory drawn from (without replacement within a batch; fewer examples while it
        holds fewer than asked for; none while it is empty).
    ratio : float
        Replayed examples per current example.
    seed : int
        Seeds the draws.

    Notes
    -----
    Place it before plugins that should also see the replayed examples (augmentation,
    adversarial examples, :class:`~fedrobust.continual.lwf.LwF`). Under DP-SGD the replayed
    examples are not Poisson-sampled, so the accountant's guarantee would not hold; the
    federated integration must refuse that combination. With :class:`TaskMask` the replayed
    examples would be scored under the current task's mask; use replay class-incrementally.
    """

    def __init__(self, buffer: ReservoirBuffer, ratio: float, seed: int) -> None:
        if ratio < 0:
            raise ValueError(f"Replay ratio must be >= 0, got {ratio}")
        self.buffer = buffer
        self.ratio = ratio
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = round(self.ratio * len(x))
        if n == 0 or len(self.buffer) == 0:
            return x, y
        xr, yr = self.buffer.sample(n, self.generator)
        xr = xr.to(x.device, x.dtype)
        yr = yr.to(y.device, y.dtype)
        return torch.cat([x, xr]), torch.cat([y, yr])
