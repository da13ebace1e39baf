"""Partitioning through flwr-datasets and the whole federation build."""

from __future__ import annotations

import numpy as np
import pytest

from fedrobust.data import build_federation
from fedrobust.data.config import DataConfig, PartitionConfig
from fedrobust.data.partition import every_partition, partition_indices
from fedrobust.errors import FedrobustError
from fedrobust.report.html import _unassigned_line

LABELS = np.repeat(np.arange(10), 100)  # 1,000 samples, 100 per class


@pytest.mark.parametrize(
    "cfg",
    [
        {"kind": "iid", "num_clients": 7},
        {"kind": "dirichlet", "num_clients": 5, "alpha": 0.3},
        {"kind": "pathological", "num_clients": 5, "classes_per_client": 2},
        {"kind": "shard", "num_clients": 5, "shards_per_client": 2},
        {"kind": "exponential", "num_clients": 4},
        {"kind": "linear", "num_clients": 4},
        {"kind": "square", "num_clients": 4},
        {"kind": "size", "num_clients": 3, "sizes": [100, 200, 300]},
        {"kind": "inner_dirichlet", "num_clients": 3, "sizes": [100, 200, 300], "alpha": 0.5},
    ],
    ids=lambda c: c["kind"],
)
def test_every_kind_gives_disjoint_nonempty_partitions(cfg: dict) -> None:
    parts = partition_indices(LABELS, PartitionConfig(**cfg), seed=0)
    assert len(parts) == cfg["num_clients"]
    joined = np.concatenate(parts)
    assert len(joined) == len(set(joined.tolist()))  # no sample twice
    assert all(len(p) > 0 for p in parts)
    if "sizes" in cfg:
        assert [len(p) for p in parts] == cfg["sizes"]
    if cfg["kind"] in ("iid", "dirichlet"):
        assert len(joined) == len(LABELS)


def test_pathological_clients_hold_exactly_their_classes() -> None:
    cfg = PartitionConfig(kind="pathological", num_clients=5, classes_per_client=2)
    for rows in partition_indices(LABELS, cfg, seed=0):
        assert len(np.unique(LABELS[rows])) == 2


def test_dirichlet_alpha_controls_skew() -> None:
    def mean_classes(alpha: float) -> float:
        cfg = PartitionConfig(kind="dirichlet", num_clients=10, alpha=alpha, min_partition_size=0)
        parts = partition_indices(LABELS, cfg, seed=0)
        return float(np.mean([(np.bincount(LABELS[p], minlength=10) > 5).sum() for p in parts]))

    assert mean_classes(0.05) < mean_classes(100.0)


def test_too_many_clients_names_the_field() -> None:
    with pytest.raises(FedrobustError) as info:
        partition_indices(LABELS[:5], PartitionConfig(kind="iid", num_clients=6), seed=0)
    assert info.value.where == "data.partition.num_clients"


def test_federation_split_is_stratified_deterministic_and_disjoint() -> None:
    cfg = DataConfig(
        dataset="digits",
        test_fraction=0.25,
        partition=PartitionConfig(kind="dirichlet", num_clients=4, alpha=0.5),
    )
    fed = build_federation(cfg, seed=3)
    again = build_federation(DataConfig.model_validate(cfg.model_dump()), seed=3)
    assert fed is again  # same config and seed: the process-wide cache
    test_share = np.bincount(fed.y_test) / len(fed.y_test)
    assert np.abs(test_share - 0.1).max() < 0.02  # stratified: ~10 % of each digit
    assert abs(len(fed.y_test) - 0.25 * 1797) <= 1
    total = len(fed.y_test) + sum(len(c.y_train) + len(c.y_val) for c in fed.clients)
    assert total == 1797
    other = build_federation(cfg, seed=4)
    assert not np.array_equal(other.clients[0].y_train, fed.clients[0].y_train)


def test_pathological_split_uses_every_class_by_default() -> None:
    # digits-like pool, 6 clients x 3 of 10 classes: flwr-datasets' modes leave classes out
    cfg = PartitionConfig(kind="pathological", num_clients=6, classes_per_client=3)
    assert cfg.class_assignment == "every-class"
    for seed in range(5):
        parts = partition_indices(LABELS, cfg, seed=seed)
        joined = np.concatenate(parts)
        assert len(joined) == len(LABELS) == len(set(joined.tolist()))
        assert all(len(np.unique(LABELS[p])) == 3 for p in parts)


def test_a_split_that_leaves_samples_out_says_so(caplog: pytest.LogCaptureFixture) -> None:
    cfg = DataConfig(
        dataset="digits",
        partition=PartitionConfig(
            kind="pathological", num_clients=3, classes_per_client=2,
            class_assignment="first-deterministic",
        ),
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="fedrobust"):
        fed = build_federation(cfg, seed=0)
    summary = fed.summary()
    assert summary["unassigned"] > 0 and len(summary["unused_classes"]) >= 4  # 6 slots, 10 classes
    assert "go to no client" in caplog.text and str(summary["unassigned"]) in caplog.text
    line = _unassigned_line(summary)
    assert f"{summary['unassigned']} training samples" in line
    assert _unassigned_line(build_federation(DataConfig(dataset="digits"), seed=0).summary()) == ""


@pytest.mark.parametrize("kind", ["iid", "linear"])
def test_contiguous_partitioners_see_a_sorted_pool_shuffled(kind: str) -> None:
    labels = np.repeat(np.arange(10), 100)  # sorted by label, as mnist-5k's pool is
    cfg = PartitionConfig(kind=kind, num_clients=5)
    parts = partition_indices(labels, cfg, seed=3)
    assert sorted(np.concatenate(parts).tolist()) == list(range(1000))  # each row once
    for rows in parts:
        counts = np.bincount(labels[rows], minlength=10)
        assert (counts > 0).all()  # every client holds every class, not one or two
    again = partition_indices(labels, cfg, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = partition_indices(labels, cfg, seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


@pytest.mark.parametrize(
    "cfg",
    [
        {"kind": "iid", "num_clients": 7},
        {"kind": "dirichlet", "num_clients": 5, "alpha": 0.3},
        {"kind": "pathological", "num_clients": 5, "classes_per_client": 2},
        {"kind": "shard", "num_clients": 5, "shards_per_client": 2},
        {"kind": "exponential", "num_clients": 4},
        {"kind": "size", "num_clients": 3, "sizes": [100, 200, 300]},
        {"kind": "inner_dirichlet", "num_clients": 3, "sizes": [100, 200, 300], "alpha": 0.5},
    ],
    ids=lambda c: c["kind"],
)
def test_partitions_read_in_one_pass_equal_flwr_datasets_client_by_client(cfg: dict) -> None:
    from datasets import Dataset

    from fedrobust.data.partition import make_partitioner

    config = PartitionConfig(**cfg)
    rows = np.random.default_rng(1).permutation(len(LABELS))

    def partitioner():  # a fresh one per reading: flwr-datasets keeps its draws
        p = make_partitioner(config, seed=3)
        p.dataset = Dataset.from_dict({"label": LABELS[rows], "row": rows})
        return p

    one_by_one = partitioner()
    expected = [np.asarray(one_by_one.load_partition(i)["row"]) for i in range(config.num_clients)]
    fast = every_partition(partitioner(), rows, config.num_clients)
    assert [p.tolist() for p in fast] == [p.tolist() for p in expected]


def test_ten_thousand_iid_clients_are_partitioned_in_well_under_a_second() -> None:
    import time

    labels = np.repeat(np.arange(10), 2_000)
    started = time.perf_counter()
    parts = partition_indices(labels, PartitionConfig(kind="iid", num_clients=10_000), seed=0)
    assert time.perf_counter() - started < 1.0  # client by client: ~30 s
    assert len(parts) == 10_000 and sum(len(p) for p in parts) == len(labels)
