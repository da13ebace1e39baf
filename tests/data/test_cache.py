"""A client's partition is cached on disk between processes, and never trusted blindly."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from fedrobust.data import ClientData, build_federation
from fedrobust.data.cache import (
    KEY_ENTRY,
    SUM_ENTRY,
    cache_dir,
    cached_partition,
    partition_key,
    partition_path,
    read_partition,
)
from fedrobust.data.config import DataConfig

FIELDS = ("x_train", "y_train", "y_train_clean", "x_val", "y_val", "x_test", "y_test")


def config(**extra: object) -> DataConfig:
    return DataConfig.model_validate(
        {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}, **extra}
    )


def client(cfg: DataConfig, pid: int = 0) -> ClientData:
    return build_federation(cfg, 0).clients[pid]


def assert_same(a: ClientData, b: ClientData) -> None:
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            assert x is None and y is None, name
            continue
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def must_not_build() -> ClientData:
    raise AssertionError("the partition was rebuilt although a sound cache file holds it")


class Builds:
    """A builder that counts its calls."""

    def __init__(self, data: ClientData) -> None:
        self.data, self.calls = data, 0

    def __call__(self) -> ClientData:
        self.calls += 1
        return self.data


def test_the_cache_directory_comes_from_node_config_then_the_environment_then_the_user(
    tmp_path: Path,
) -> None:
    env = {"FEDROBUST_CACHE_DIR": str(tmp_path / "env"), "XDG_CACHE_HOME": str(tmp_path / "x")}
    assert cache_dir({"cache-dir": str(tmp_path / "node")}, env) == tmp_path / "node"
    assert cache_dir({}, env) == tmp_path / "env"
    assert cache_dir({}, {"XDG_CACHE_HOME": str(tmp_path / "x")}) == (
        tmp_path / "x" / "fedrobust" / "partitions"
    )
    assert cache_dir({}, {}) == Path("~/.cache/fedrobust/partitions").expanduser()
    assert cache_dir({"cache-dir": "off"}, env) is None
    assert cache_dir({}, {"FEDROBUST_CACHE_DIR": ""}) is None


@pytest.mark.parametrize("local_test", [0.0, 0.2])
def test_a_second_load_reads_the_cache_and_returns_identical_arrays(
    tmp_path: Path, local_test: float
) -> None:
    cfg = config(local_test_fraction=local_test)
    key = partition_key(cfg, 0, 1)
    builds = Builds(client(cfg, 1))
    first = cached_partition(tmp_path, key, builds)
    assert builds.calls == 1 and partition_path(tmp_path, key).is_file()
    second = cached_partition(tmp_path, key, must_not_build)
    assert_same(first, second)
    assert (second.x_test is None) == (local_test == 0)


def test_everything_that_determines_a_partition_changes_its_file(tmp_path: Path) -> None:
    cfg = config()
    base = partition_path(tmp_path, partition_key(cfg, 0, 0))
    others = {
        partition_path(tmp_path, partition_key(cfg, 1, 0)),  # seed
        partition_path(tmp_path, partition_key(cfg, 0, 1)),  # partition id
        partition_path(tmp_path, partition_key(config(val_fraction=0.2), 0, 0)),  # data
        partition_path(tmp_path, partition_key(cfg, 0, 0, {"audit": {"canaries": 10}})),
    }
    assert base not in others and len(others) == 4


def _rewrite(path: Path, **changes: np.ndarray) -> None:
    with np.load(path, allow_pickle=False) as archive:
        entries = {name: archive[name] for name in archive.files}
    entries.update(changes)
    np.savez(path, **entries)


def test_a_tampered_cache_file_fails_its_checksum_and_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = config()
    key = partition_key(cfg, 0, 0)
    data = client(cfg)
    cached_partition(tmp_path, key, Builds(data))
    path = partition_path(tmp_path, key)
    flipped = data.y_train.copy()
    flipped[0] = (flipped[0] + 1) % 10
    _rewrite(path, y_train=flipped)  # same key and checksum entries, other labels
    assert read_partition(path, key) is None
    builds = Builds(data)
    with caplog.at_level(logging.WARNING, logger="fedrobust.data"):
        again = cached_partition(tmp_path, key, builds)
    assert builds.calls == 1 and "checksum" in caplog.text
    assert_same(again, data)
    assert_same(cached_partition(tmp_path, key, must_not_build), data)  # rewritten sound


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(b"not an npz file"),
        lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2]),
        lambda path: _rewrite(path, **{KEY_ENTRY: np.array('{"another": "key"}')}),
        lambda path: _rewrite(path, **{SUM_ENTRY: np.array("0" * 64)}),
        lambda path: _rewrite(path, x_test=np.zeros(3, dtype=np.float32)),  # y_test missing
    ],
    ids=["garbage", "truncated", "another key", "wrong checksum", "incomplete"],
)
def test_a_corrupt_or_mismatching_cache_file_is_rebuilt(tmp_path: Path, damage: object) -> None:
    cfg = config()
    key = partition_key(cfg, 0, 0)
    data = client(cfg)
    cached_partition(tmp_path, key, Builds(data))
    path = partition_path(tmp_path, key)
    damage(path)  # type: ignore[operator]
    builds = Builds(data)
    assert_same(cached_partition(tmp_path, key, builds), data)
    assert builds.calls == 1
    assert_same(cached_partition(tmp_path, key, must_not_build), data)


def test_an_unwritable_cache_costs_a_warning_not_the_round(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    cfg = config()
    data = client(cfg)
    with caplog.at_level(logging.WARNING, logger="fedrobust.data"):
        got = cached_partition(blocker / "cache", partition_key(cfg, 0, 0), Builds(data))
    assert got is data and "not written" in caplog.text


def test_no_directory_means_no_cache(tmp_path: Path) -> None:
    cfg = config()
    builds = Builds(client(cfg))
    cached_partition(None, partition_key(cfg, 0, 0), builds)
    cached_partition(None, partition_key(cfg, 0, 0), builds)
    assert builds.calls == 2
