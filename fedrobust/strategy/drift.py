"""What the client-drift strategies share: arrays as numpy dicts, and per-client server state.

SCAFFOLD and FedDyn keep, on the server, one state per client (its control variate
``c_i``, its gradient estimate ``h_k``) keyed by partition id, and send each sampled
client its own in its training message; the client keeps nothing. So a client that
restarts with an empty ``context.state``, and a run resumed from a checkpoint in a new
simulation, continue exactly where they were.

Flower's strategies see node ids only; a round loop samples partitions. The server half
learns which partition each node holds from the run's
:class:`~fedrobust.strategy.registry.Population`: ``sampled(rnd)`` lists the round's
partitions in the order the loop addresses their nodes. Each message names the partition
its state belongs to (``state-owner``), and the client refuses state sent to another
partition (:func:`owned_arrays`), so a mismatch fails loudly instead of mixing clients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedrobust.federation.records import Record, to_node, with_records
from fedrobust.train.config import OptimizerConfig

#: The ConfigRecord naming the partition a message's per-client state belongs to.
OWNER = "state-owner"

Arrays = dict[str, np.ndarray]


def effective_steps(steps: int, momentum: float = 0.0) -> float:
    """How many plain SGD steps ``steps`` heavy-ball steps of momentum ``ρ`` make on a
    constant gradient: ``[τ - ρ (1 - ρ^τ) / (1 - ρ)] / (1 - ρ)`` for ``τ = steps`` (``τ``
    when ρ = 0). FedNova's ``a_i``; SCAFFOLD's divisor of ``x - y_i``.

    Raises
    ------
    ValueError
        ``steps < 1`` or ``momentum`` outside [0, 1).
    """
    if steps < 1:
        raise ValueError(f"needs at least one local step (got {steps})")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1) (got {momentum})")
    if momentum == 0:
        return float(steps)
    rho = momentum
    return (steps - rho * (1 - rho**steps) / (1 - rho)) / (1 - rho)


def sgd_momentum(optimizer: OptimizerConfig) -> float:
    """The heavy-ball momentum ``ρ`` of :func:`effective_steps`: the SGD momentum, 0 for
    other optimizers (whose steps are taken as plain ones: an approximation)."""
    return optimizer.momentum if optimizer.name == "sgd" else 0.0


def float_arrays(record: ArrayRecord) -> Arrays:
    """The floating-point arrays of ``record``, by key, in its order (integer buffers
    carry no gradient and no control variate)."""
    out: Arrays = {}
    for key, array in record.items():
        value = array.numpy()
        if np.issubdtype(value.dtype, np.floating):
            out[key] = value
    return out


def zeros_like(arrays: Mapping[str, np.ndarray]) -> Arrays:
    """Zeros of each array's shape and dtype."""
    return {k: np.zeros_like(v) for k, v in arrays.items()}


def to_record(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    """An ArrayRecord of ``arrays``, in their order."""
    return ArrayRecord({k: Array(np.require(v, requirements="C")) for k, v in arrays.items()})


def to_tensors(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Checkpointable copies (``torch.load(weights_only=True)`` reads tensors back)."""
    return {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}


def from_tensors(tensors: Mapping[str, torch.Tensor]) -> Arrays:
    """What :func:`to_tensors` saved, as numpy arrays."""
    return {k: t.numpy().copy() for k, t in tensors.items()}


def replace_floats(record: ArrayRecord, arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    """``record`` with its floating-point arrays replaced by ``arrays`` (cast to the
    record's dtypes); other arrays kept."""
    out = ArrayRecord()
    for key, array in record.items():
        value = array.numpy()
        if key in arrays:
            value = np.asarray(arrays[key]).astype(value.dtype)
        out[key] = Array(np.require(value, requirements="C"))  # keeps 0-d arrays 0-d
    return out


def owned_arrays(content: Any, name: str, partition: int) -> Arrays:
    """The per-client ArrayRecord ``name`` of a training message, checked to be addressed
    to ``partition``.

    Raises
    ------
    ValueError
        When the message lacks the record or it belongs to another partition (the
        client's error reply drops it from the round).
    """
    owner = content.config_records.get(OWNER)
    if owner is None or owner.get("partition") != partition:
        got = None if owner is None else owner.get("partition")
        raise ValueError(f"per-client state for partition {got} reached partition {partition}")
    if name not in content.array_records:
        raise ValueError(f"the training message lacks '{name}'")
    return {k: a.numpy() for k, a in content.array_records[name].items()}


class ClientStateStrategy(FedAvg):
    """FedAvg that sends each sampled client its own server-kept state.

    The state is one model-shaped array set shared by all (:attr:`shared`: SCAFFOLD's
    ``c``, FedDyn's ``h``) and one per client that ever contributed (:attr:`clients`, by
    partition id: ``c_i``, ``h_k``); :meth:`fold` moves both by a round's contributions,
    :meth:`state_dict` checkpoints them. Subclasses name the records they send in
    :meth:`client_records` and call :meth:`fold` from ``aggregate_train``;
    :meth:`weighted_mean` is FedAvg's mean of the replies with the subclass's own records
    and metrics removed.

    Parameters
    ----------
    num_clients : int
        Every client of the run (``data.partition.num_clients``).
    sampled : callable
        ``sampled(rnd)``: the partitions of round ``rnd``, in the order the loop
        addresses their nodes.
    **kwargs
        Flower's FedAvg options.
    """

    #: Records of its own each reply carries (removed before FedAvg's mean).
    reply_records: ClassVar[tuple[str, ...]] = ()
    #: Metrics of its own each reply carries (removed before FedAvg's mean).
    reply_metrics: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, num_clients: int, sampled: Callable[[int], list[int]], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.num_clients = num_clients
        self.sampled = sampled
        self.partition_of: dict[int, int] = {}
        self.global_floats: Arrays = {}
        self.shared: Arrays = {}
        self.clients: dict[int, Arrays] = {}

    def client_state(self, partition: int) -> Arrays:
        """``partition``'s own state (zeros before its first contribution)."""
        state = self.clients.get(partition)
        return state if state is not None else zeros_like(self.shared)

    def fold(
        self, contributions: list[tuple[int, Arrays]], to_shared: float, to_client: float
    ) -> None:
        """``shared += to_shared * Σ_i u_i`` and ``clients[i] += to_client * u_i`` for each
        contribution ``(i, u_i)``, in float64, kept in the state's dtypes."""
        for key, value in self.shared.items():
            total = sum(u[key].astype(np.float64) for _, u in contributions)
            self.shared[key] = (value.astype(np.float64) + to_shared * total).astype(value.dtype)
        for pid, u in contributions:
            old = self.client_state(pid)
            self.clients[pid] = {
                k: (v.astype(np.float64) + to_client * u[k]).astype(v.dtype) for k, v in old.items()
            }

    def state_dict(self) -> dict[str, Any]:
        """The shared and per-client state as tensors (checkpointable)."""
        return {
            "shared": to_tensors(self.shared),
            "clients": {pid: to_tensors(s) for pid, s in sorted(self.clients.items())},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.shared = from_tensors(state["shared"])
        self.clients = {int(pid): from_tensors(s) for pid, s in state["clients"].items()}

    def start_round(self, arrays: ArrayRecord) -> None:
        """Called with the round's global weights before the messages are built: the
        shared state starts at zeros shaped like the model."""
        if not self.shared:
            self.shared = zeros_like(self.global_floats)

    def client_records(self, partition: int) -> dict[str, Record]:
        """The records ``partition``'s training message carries beside the recipe."""
        raise NotImplementedError

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's messages, each re-addressed with its client's own records."""
        nodes = list(grid.get_node_ids())
        partitions = list(self.sampled(server_round))
        if len(partitions) != len(nodes):
            raise RuntimeError(
                f"round {server_round} samples partitions {partitions} but the grid shows "
                f"{len(nodes)} nodes"
            )
        self.partition_of = dict(zip(nodes, partitions, strict=True))
        self.global_floats = {k: v.copy() for k, v in float_arrays(arrays).items()}
        self.start_round(arrays)
        out = []
        for msg in super().configure_train(server_round, arrays, config, grid):
            pid = self.partition_of[msg.metadata.dst_node_id]
            owner = ConfigRecord({"partition": pid})
            out.append(to_node(msg, **self.client_records(pid), **{OWNER: owner}))
        return out

    def by_partition(self, replies: Iterable[Message]) -> list[tuple[int, Message]]:
        """The replies with their senders' partitions (replies from nodes this round did
        not address are left out)."""
        out = []
        for msg in replies:
            pid = self.partition_of.get(msg.metadata.src_node_id)
            if pid is not None and not msg.has_error():
                out.append((pid, msg))
        return out

    def weighted_mean(
        self, server_round: int, replies: list[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """FedAvg's weighted mean of ``replies`` without this strategy's own records and
        metrics (Flower refuses a second ArrayRecord)."""
        return fedavg_mean(self, server_round, replies)


def fedavg_mean(
    strategy: FedAvg, server_round: int, replies: list[Message]
) -> tuple[ArrayRecord | None, MetricRecord | None]:
    """Flower's FedAvg ``aggregate_train`` on ``replies`` stripped of ``strategy``'s
    ``reply_records`` and ``reply_metrics``."""
    drop = tuple(getattr(strategy, "reply_records", ()))
    own = set(getattr(strategy, "reply_metrics", ()))
    plain = []
    for msg in replies:
        metrics = msg.content.metric_records["metrics"]
        kept = MetricRecord({k: v for k, v in metrics.items() if k not in own})
        plain.append(with_records(msg, drop=drop, metrics=kept))
    return FedAvg.aggregate_train(strategy, server_round, plain)


def weights_of(strategy: FedAvg, replies: list[Message]) -> np.ndarray:
    """Each reply's share of FedAvg's mean (``weighted_by_key`` over their sum)."""
    raw = np.array(
        [float(m.content.metric_records["metrics"][strategy.weighted_by_key]) for m in replies]  # type: ignore[arg-type]
    )
    return raw / raw.sum()
