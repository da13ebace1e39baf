"""Split a training pool across clients with flwr-datasets partitioners."""

from __future__ import annotations

import numpy as np
from datasets import Dataset
from flwr_datasets import partitioner as fp

from fedrobust.data.config import PartitionConfig
from fedrobust.errors import FedrobustError

FIELD = "data.partition"


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
        return fp.PathologicalPartitioner(
            num_partitions=n,
            partition_by=by,
            num_classes_per_partition=cfg.classes_per_client,
            class_assignment_mode=cfg.class_assignment,
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
    partitioner.dataset = Dataset.from_dict(
        {"label": labels.astype(np.int64), "row": np.arange(len(labels), dtype=np.int64)}
    )
    try:
        parts = [
            np.asarray(partitioner.load_partition(i)["row"], dtype=np.int64)
            for i in range(cfg.num_clients)
        ]
    except (ValueError, KeyError, IndexError) as exc:
        raise FedrobustError(FIELD, f"the '{cfg.kind}' partitioner failed: {exc}") from None
    for client, rows in enumerate(parts):
        if len(rows) == 0:
            raise FedrobustError(
                FIELD, f"client {client} received no data; use fewer clients or another kind"
            )
    return parts
