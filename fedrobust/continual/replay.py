"""Experience replay: a reservoir-sampled memory, a plugin that mixes it into batches, and
the union of a task's data with the memory under class-balanced sampling.

Reservoir sampling (algorithm R): Vitter 1985, "Random sampling with a reservoir",
https://doi.org/10.1145/3147.3165. Experience replay with a small reservoir memory:
Chaudhry et al. 2019, https://arxiv.org/abs/1902.10486. Class-balanced reservoir sampling:
Chrysakis & Moens 2020, "Online Continual Learning from Imbalanced Data",
https://proceedings.mlr.press/v119/chrysakis20a.html.
"""

from __future__ import annotations

import numpy as np
import torch

from fedrobust.train.plugins import TrainPlugin


class ReservoirBuffer:
    """A fixed-capacity memory holding a uniform sample of every example streamed in.

    After ``n`` examples have been added, each of them is in the buffer with probability
    ``min(1, capacity / n)`` (algorithm R, applied exactly to each example in turn).

    With ``balance=True`` it is a class-balanced reservoir instead (Chrysakis & Moens 2020,
    CBRS): while there is room every example is stored; afterwards an example of a class
    that does not hold the most slots replaces a random example of the largest class (ties
    drawn at random), and an example of a largest class replaces a random example of its
    own class with probability ``stored_c / seen_c`` (reservoir sampling within the class).
    Every seen class ends up with an equal share of the slots (up to one), as far as it
    has examples.

    Parameters
    ----------
    capacity : int
        Most examples held.
    seed : int
        Seeds the replacement draws.
    balance : bool
        Class-balanced replacement (labels must be class indices).

    Notes
    -----
    Storage is allocated on the first :meth:`add`, with that batch's per-example shape,
    dtype and device; later batches are converted to them. Each example may carry the
    logits a model gave it when it was stored (dark experience replay), kept as ``z``.
    """

    def __init__(self, capacity: int, seed: int, balance: bool = False) -> None:
        if capacity < 1:
            raise ValueError(f"ReservoirBuffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.balance = balance
        self.seen = 0
        self.class_seen: dict[int, int] = {}
        self.generator = torch.Generator().manual_seed(seed)
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.z: torch.Tensor | None = None

    def __len__(self) -> int:
        return min(self.seen, self.capacity)

    def counts(self) -> dict[int, int]:
        """Stored examples per class (classes with none left out)."""
        if self.y is None:
            return {}
        labels, counts = torch.unique(self.y[: len(self)], return_counts=True)
        return {int(c): int(n) for c, n in zip(labels, counts, strict=True)}

    def add(self, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor | None = None) -> None:
        """Stream a batch of examples through the reservoir, one example at a time.

        Parameters
        ----------
        x : torch.Tensor
            Inputs, first axis: examples.
        y : torch.Tensor
            Their labels.
        logits : torch.Tensor, optional
            What a model scored them at insertion (dark experience replay); given on every
            call or on none.
        """
        if len(x) != len(y) or (logits is not None and len(logits) != len(x)):
            raise ValueError(f"add: {len(x)} inputs but {len(y)} labels")
        if len(x) == 0:
            return
        if (logits is None) != (self.z is None) and self.x is not None:
            raise ValueError("add: logits must come with every batch or with none")
        if self.x is None or self.y is None:
            self.x = torch.zeros((self.capacity, *x.shape[1:]), dtype=x.dtype, device=x.device)
            self.y = torch.zeros((self.capacity, *y.shape[1:]), dtype=y.dtype, device=y.device)
            if logits is not None:
                self.z = torch.zeros((self.capacity, *logits.shape[1:]), dtype=torch.float32)
        elif tuple(x.shape[1:]) != tuple(self.x.shape[1:]):
            raise ValueError(
                f"add: examples of shape {tuple(x.shape[1:])}, "
                f"the buffer holds {tuple(self.x.shape[1:])}"
            )
        x = x.to(self.x.device, self.x.dtype)
        y = y.to(self.y.device, self.y.dtype)
        z = None if logits is None or self.z is None else logits.detach().to(self.z.dtype)
        if self.balance:
            self._add_balanced(x, y, z)
            return
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
            self._store(slot, x[k], y[k], None if z is None else z[k])
        for c in y.tolist():
            self.class_seen[int(c)] = self.class_seen.get(int(c), 0) + 1
        self.seen += len(x)

    def _store(self, slot: int, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor | None) -> None:
        assert self.x is not None and self.y is not None
        self.x[slot] = x
        self.y[slot] = y
        if z is not None and self.z is not None:
            self.z[slot] = z

    def _add_balanced(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor | None) -> None:
        """Class-balanced reservoir sampling (CBRS), one example at a time."""
        assert self.y is not None
        for k in range(len(x)):
            c = int(y[k])
            self.class_seen[c] = self.class_seen.get(c, 0) + 1
            zk = None if z is None else z[k]
            if self.seen < self.capacity:
                self._store(self.seen, x[k], y[k], zk)
                self.seen += 1
                continue
            self.seen += 1
            counts = self.counts()
            largest = max(counts.values())
            if counts.get(c, 0) < largest:  # take a slot from a largest class
                full = sorted(cls for cls, n in counts.items() if n == largest)
                pick = full[int(torch.randint(len(full), (1,), generator=self.generator))]
            else:  # reservoir sampling within its own class
                u = float(torch.rand(1, generator=self.generator, dtype=torch.float64))
                if u >= counts[c] / self.class_seen[c]:
                    continue
                pick = c
            slots = torch.nonzero(self.y == pick).flatten()
            slot = int(slots[int(torch.randint(len(slots), (1,), generator=self.generator))])
            self._store(slot, x[k], y[k], zk)

    def _draw(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        if self.x is None or self.y is None:
            raise ValueError("sample: the buffer is empty")
        order = torch.randperm(len(self), generator=generator or self.generator)[: max(n, 0)]
        return order.to(self.x.device)

    def sample_logits(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Like :meth:`sample`, with each example's stored logits.

        Returns
        -------
        (torch.Tensor, torch.Tensor, torch.Tensor)
            Inputs, labels and the logits stored with them.
        """
        if self.z is None:
            raise ValueError("sample_logits: the buffer stores no logits")
        order = self._draw(n, generator)
        assert self.x is not None and self.y is not None
        return self.x[order], self.y[order], self.z[order.cpu()]

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
        order = self._draw(n, generator)
        assert self.x is not None and self.y is not None
        return self.x[order], self.y[order]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The buffer as tensors (e.g. for a Flower ``ArrayRecord`` in ``context.state``).

        Keys: ``x`` and ``y`` (the ``len(self)`` stored examples), ``z`` (their logits;
        empty when none are stored), ``seen`` and ``capacity`` (0-dim int64), ``classes``
        and ``class_seen`` (examples seen per class) and ``rng`` (the generator state, uint8).
        """
        size = len(self)
        empty = torch.zeros(0)
        classes = sorted(self.class_seen)
        return {
            "x": empty if self.x is None else self.x[:size].clone(),
            "y": empty.long() if self.y is None else self.y[:size].clone(),
            "z": empty if self.z is None else self.z[:size].clone(),
            "seen": torch.tensor(self.seen, dtype=torch.int64),
            "capacity": torch.tensor(self.capacity, dtype=torch.int64),
            "classes": torch.tensor(classes, dtype=torch.int64),
            "class_seen": torch.tensor([self.class_seen[c] for c in classes], dtype=torch.int64),
            "rng": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned (capacity must match)."""
        capacity = int(state["capacity"])
        if capacity != self.capacity:
            raise ValueError(f"state has capacity {capacity}, this buffer {self.capacity}")
        self.seen = int(state["seen"])
        self.generator.set_state(state["rng"].to(torch.uint8).cpu())
        x, y, z = state["x"], state["y"], state.get("z", torch.zeros(0))
        classes, class_seen = state.get("classes"), state.get("class_seen")
        if classes is not None and class_seen is not None:
            pairs = zip(classes.tolist(), class_seen.tolist(), strict=True)
            self.class_seen = {int(c): int(n) for c, n in pairs}
        if self.seen == 0:
            self.x = self.y = self.z = None
            return
        if len(x) != len(self) or len(y) != len(self):
            raise ValueError(f"state holds {len(x)} examples; seen={self.seen} implies {len(self)}")
        self.x = torch.zeros((self.capacity, *x.shape[1:]), dtype=x.dtype, device=x.device)
        self.y = torch.zeros((self.capacity, *y.shape[1:]), dtype=y.dtype, device=y.device)
        self.x[: len(x)] = x
        self.y[: len(y)] = y
        self.z = None
        if len(z):
            self.z = torch.zeros((self.capacity, *z.shape[1:]), dtype=torch.float32)
            self.z[: len(z)] = z


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


def balanced_union(
    x: np.ndarray,
    y: np.ndarray,
    buffer: ReservoirBuffer,
    generator: torch.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The task's data and the buffer as one set, drawn class-balanced (``replay.mode: union``).

    The union has ``n = len(x) + len(buffer)`` examples over ``K`` classes; the result has
    ``n`` too, ``n // K`` of each class (the remainder spread over classes drawn at
    random). A class with at least its quota gives that many distinct examples; a smaller
    one gives all of them, repeated, and a random rest.

    Parameters
    ----------
    x, y : np.ndarray
        The current task's examples.
    buffer : ReservoirBuffer
        The memory (may be empty: the task's data is then balanced alone).
    generator : torch.Generator
        Seeds the draws.

    Returns
    -------
    (np.ndarray, np.ndarray)
        Inputs and labels, grouped by class (the training loop shuffles them).
    """
    if len(buffer):
        assert buffer.x is not None and buffer.y is not None
        bx = buffer.x[: len(buffer)].cpu().numpy().astype(x.dtype, copy=False)
        by = buffer.y[: len(buffer)].cpu().numpy().astype(y.dtype, copy=False)
        x, y = np.concatenate([x, bx]), np.concatenate([y, by])
    classes = np.unique(y)
    quota = np.full(len(classes), len(y) // len(classes))
    extra = torch.randperm(len(classes), generator=generator)[: len(y) % len(classes)]
    quota[extra.numpy()] += 1
    chosen: list[np.ndarray] = []
    for c, q in zip(classes, quota, strict=True):
        members = np.flatnonzero(y == c)
        repeats, rest = divmod(int(q), len(members))
        pick = torch.randperm(len(members), generator=generator)[:rest].numpy()
        chosen.append(np.concatenate([np.tile(members, repeats), members[pick]]))
    index = np.concatenate(chosen)
    return x[index], y[index]
