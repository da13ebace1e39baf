"""Split a training pool across clients with flwr-datasets partitioners.

The pathological split (McMahan et al. 2017, https://arxiv.org/abs/1602.05629) assigns
every class by default (``class_assignment: every-class``): flwr-datasets' own modes can
leave classes to no client (6 clients x 3 of 10 classes, ``first-deterministic``: classes
6 to 9 only by chance), and then only warn. A split that still leaves samples out (fewer
class slots than classes; ``size``) is reported by the federation (``unassigned``).

flwr-datasets' iid, size, exponential, linear and square partitioners cut the dataset
into contiguous runs, trusting it to be shuffled; a pool sorted by label (mnist-5k is)
would give each "iid" client one or two classes. They get the pool in a seeded random
order (:data:`CONTIGUOUS`).
"""

from __future__ import annotations

import warnings

import numpy as np
from datasets import Dataset
from flwr_datasets import partitioner as fp

from fedrobust.data.config import PartitionConfig
from fedrobust.errors import FedrobustError
from fedrobust.seeds import Stream, stream

FIELD = "data.partition"
#: Partitioners that cut the dataset in order: they see the pool shuffled.
CONTIGUOUS = frozenset({"iid", "size", "exponential", "linear", "square"})


class EveryClassPathologicalPartitioner(fp.PathologicalPartitioner):
    """flwr-datasets' pathological partitioner with an assignment that uses every class.

    The classes are put in a seeded random order; client ``c`` takes the
    ``classes_per_client`` classes that follow position ``c * classes_per_client`` in
    that order, wrapping around. The clients' class slots thus run through the order
    back to back, so every class is held by some client as soon as
    ``num_clients * classes_per_client >= num_classes``, and each class by
    ``floor`` or ``ceil`` of ``num_clients * classes_per_client / num_classes`` clients.
    Splitting a class's samples between its clients is flwr-datasets' own.
    """

    def _determine_partition_id_to_unique_labels(self) -> None:
        labels = sorted(self.dataset.unique(self._partition_by))
        per_client = self._num_classes_per_partition
        if per_client > len(labels):
            raise ValueError(
                f"classes_per_client={per_client} is more than the {len(labels)} classes "
                "of the training pool"
            )
        self._unique_labels = labels
        order = self._rng.permutation(len(labels))
        for pid in range(self._num_partitions):
            self._partition_id_to_unique_labels[pid] = [
                labels[order[(pid * per_client + i) % len(labels)]] for i in range(per_client)
            ]


def make_partitioner(cfg: PartitionConfig, seed: int) -> fp.Partitioner:
    """The flwr-datasets partitioner for ``cfg`` (not yet given a dataset)."""
    n = cfg.num_clients
    by = "label"
    if cfg.kind == "iid":
        return fp.IidPartitioner(num_partitions=n)
    if cfg.kind == "dirichlet":
        return fp.DirichletPartitioner(
            num_partitions=n,
            partition_by=by,
            alpha=cfg.alpha,
            min_partition_size=cfg.min_partition_size,
            self_balancing=cfg.self_balancing,
            seed=seed,
        )
    if cfg.kind == "inner_dirichlet":
        assert cfg.sizes is not None
        return fp.InnerDirichletPartitioner(
            partition_sizes=cfg.sizes, partition_by=by, alpha=cfg.alpha, seed=seed
        )
    if cfg.kind == "pathological":
        every = cfg.class_assignment == "every-class"
        cls = EveryClassPathologicalPartitioner if every else fp.PathologicalPartitioner
        return cls(
            num_partitions=n,
            partition_by=by,
            num_classes_per_partition=cfg.classes_per_client,
            class_assignment_mode="deterministic" if every else cfg.class_assignment,
            seed=seed,
        )
    if cfg.kind == "shard":
        return fp.ShardPartitioner(
            num_partitions=n,
            partition_by=by,
            num_shards_per_partition=cfg.shards_per_client,
            shard_size=cfg.shard_size,
            seed=seed,
        )
    if cfg.kind == "exponential":
        return fp.ExponentialPartitioner(num_partitions=n)
    if cfg.kind == "linear":
        return fp.LinearPartitioner(num_partitions=n)
    if cfg.kind == "square":
        return fp.SquarePartitioner(num_partitions=n)
    if cfg.kind == "size":
        assert cfg.sizes is not None
        return fp.SizePartitioner(partition_sizes=cfg.sizes)
    raise FedrobustError(f"{FIELD}.kind", f"unknown partition kind '{cfg.kind}'")


def partition_indices(labels: np.ndarray, cfg: PartitionConfig, seed: int) -> list[np.ndarray]:
    """Indices into ``labels`` of each client's share, in client order.

    The partitioner sees a ``datasets.Dataset`` holding only the label and the row
    index, so no input data is copied.

    Raises
    ------
    FedrobustError
        When the partitioner cannot satisfy ``cfg`` on this pool (e.g. more
        clients than samples), naming ``data.partition``.
    """
    if cfg.num_clients > len(labels):
        raise FedrobustError(
            f"{FIELD}.num_clients",
            f"{cfg.num_clients} clients but the training pool has {len(labels)} samples",
        )
    if cfg.sizes is not None and sum(cfg.sizes) > len(labels):
        raise FedrobustError(
            f"{FIELD}.sizes", f"sum {sum(cfg.sizes)} exceeds the training pool ({len(labels)})"
        )
    partitioner = make_partitioner(cfg, seed)
    rows = np.arange(len(labels), dtype=np.int64)
    if cfg.kind in CONTIGUOUS:
        rows = stream(seed, Stream.POOL_ORDER).permutation(rows)
    partitioner.dataset = Dataset.from_dict({"label": labels[rows].astype(np.int64), "row": rows})
    try:
        with warnings.catch_warnings():
            # "Classes ... will NOT be used": the federation reports unassigned samples
            # and classes itself (Federation.summary, a warning on the fedrobust logger)
            warnings.filterwarnings("ignore", message="Classes: .* will NOT be used")
            parts = every_partition(partitioner, rows, cfg.num_clients)
    except (ValueError, KeyError, IndexError) as exc:
        raise FedrobustError(FIELD, f"the '{cfg.kind}' partitioner failed: {exc}") from None
    for client, rows in enumerate(parts):
        if len(rows) == 0:
            raise FedrobustError(
                FIELD, f"client {client} received no data; use fewer clients or another kind"
            )
    return parts


def every_partition(partitioner: fp.Partitioner, rows: np.ndarray, n: int) -> list[np.ndarray]:
    """The ``row`` column of each of the ``n`` partitions, computed in one pass.

    ``load_partition`` builds a ``datasets.Dataset`` per client (~3 ms each: 30 s for
    10,000 clients). flwr-datasets' iid partitioner cuts contiguous shards (the first
    ``len % n`` one row longer: ``np.array_split``); the others compute every client's
    positions once, on the first ``load_partition``, into ``_partition_id_to_indices``,
    read here directly (positions in the partitioner's dataset, which the shard
    partitioner sorts by label first). A partitioner without that table is loaded client
    by client. ``rows`` is the ``row`` column of the dataset the partitioner was given.
    """
    if isinstance(partitioner, fp.IidPartitioner):
        return [np.asarray(part, dtype=np.int64) for part in np.array_split(rows, n)]
    first = np.asarray(partitioner.load_partition(0)["row"], dtype=np.int64)
    table = getattr(partitioner, "_partition_id_to_indices", None)
    if isinstance(table, dict) and len(table) == n:
        current = np.asarray(partitioner.dataset["row"], dtype=np.int64)  # shard: sorted
        return [current[np.asarray(table[pid], dtype=np.int64)] for pid in range(n)]
    rest = [np.asarray(partitioner.load_partition(i)["row"], dtype=np.int64) for i in range(1, n)]
    return [first, *rest]
