"""A client's data in a local round: its partition cached between processes, its own file never."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.app import Context, RecordDict

from fedrobust.data.federated import _build_cached
from fedrobust.federation import local_round
from fedrobust.federation.local_round import load_client_data
from fedrobust.models.registry import InputSpec
from fedrobust.privacy.canaries import _with_canaries, scenario_federation
from fedrobust.scenario import Scenario, parse_scenario

SPEC = InputSpec(shape=(1, 8, 8), num_classes=10)
FIELDS = ("x_train", "y_train", "y_train_clean", "x_val", "y_val")


def scenario(**sections: object) -> Scenario:
    return parse_scenario(
        {
            "name": "cache",
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}},
            "model": {"name": "mlp", "hidden": [16]},
            **sections,
        }
    )


def context(cache: Path, **node: str | int) -> Context:
    config = {"partition-id": 1, "num-partitions": 3, "cache-dir": str(cache), **node}
    return Context(run_id=1, node_id=1, node_config=config, state=RecordDict(), run_config={})


def files(cache: Path) -> list[Path]:
    return sorted(cache.glob("partition-*.npz"))


def test_a_load_with_the_in_process_caches_cleared_reads_the_disk_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sc = scenario()
    first = load_client_data(sc, SPEC, context(tmp_path))
    assert len(files(tmp_path)) == 1
    _build_cached.cache_clear()
    _with_canaries.cache_clear()

    def rebuild(_: Scenario) -> None:
        raise AssertionError("the federation was rebuilt although the cache holds the partition")

    monkeypatch.setattr(local_round, "scenario_federation", rebuild)
    second = load_client_data(sc, SPEC, context(tmp_path))
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
        assert getattr(first, name).dtype == getattr(second, name).dtype


def test_an_audited_partition_is_cached_apart_with_its_canaries(tmp_path: Path) -> None:
    plain = load_client_data(scenario(), SPEC, context(tmp_path))
    audited_sc = scenario(privacy={"audit": {"canaries": 30}})
    audited = load_client_data(audited_sc, SPEC, context(tmp_path))
    assert len(files(tmp_path)) == 2
    expected = scenario_federation(audited_sc).clients[1]
    np.testing.assert_array_equal(audited.y_train, expected.y_train)
    assert len(audited.y_train) >= len(plain.y_train)


def test_a_devices_own_data_file_is_never_cached(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "device.npz"
    np.savez(path, x=rng.random((40, 1, 8, 8), dtype=np.float32), y=rng.integers(0, 10, 40))
    cache = tmp_path / "cache"
    data = load_client_data(scenario(), SPEC, context(cache, **{"data-path": str(path)}))
    assert len(data.y_train) + len(data.y_val) == 40
    assert not cache.exists() or files(cache) == []
