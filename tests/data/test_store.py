"""The run's federation store: built once, mapped read-only, bit-identical to a
federation built in memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedrobust.data import ClientData, Federation, build_federation
from fedrobust.data import federated as federated_module
from fedrobust.data import sources as sources_module
from fedrobust.data import stream as stream_module
from fedrobust.data.config import DataConfig
from fedrobust.data.store import (
    MANIFEST,
    STORE_ENV,
    StoredFederation,
    build_store,
    ensure_store,
    open_store,
)
from fedrobust.errors import FedrobustError
from fedrobust.scenario import parse_scenario

PATHOLOGICAL = {"kind": "pathological", "num_clients": 4, "classes_per_client": 3}


def _data(dataset: str = "digits", **fields: Any) -> DataConfig:
    fields.setdefault("partition", PATHOLOGICAL)
    return DataConfig.model_validate({"dataset": dataset, **fields})


def _same_client(a: ClientData, b: ClientData) -> None:
    for name in ("x_train", "y_train", "y_train_clean", "x_val", "y_val", "x_test", "y_test"):
        left, right = getattr(a, name), getattr(b, name)
        if left is None or right is None:
            assert left is None and right is None, name
            continue
        assert left.dtype == right.dtype and left.shape == right.shape, name
        assert left.tobytes() == right.tobytes(), name  # bit for bit


def _same_federation(stored: Federation, built: Federation) -> None:
    assert stored.spec == built.spec and stored.classes == built.classes
    assert np.asarray(stored.x_test).tobytes() == built.x_test.tobytes()
    assert stored.x_test.dtype == built.x_test.dtype
    np.testing.assert_array_equal(stored.y_test, built.y_test)
    assert len(stored.clients) == len(built.clients)
    for a, b in zip(stored.clients, built.clients, strict=True):
        _same_client(a, b)
    assert stored.summary() == built.summary()
    assert stored.train_sizes() == built.train_sizes()


@pytest.mark.parametrize(
    "fields",
    [
        {"label_noise": {"kind": "symmetric", "rate": 0.3}, "local_test_fraction": 0.2},
        {"imbalance": {"ratio": 0.1}, "limited": {"fraction": 0.5}},
        {"feature_shift": {"kind": "rotate"}, "local_test_fraction": 0.2},
        {"feature_shift": {"kind": "contrast"}, "sequence": "rows"},
        {"resize": [12, 12], "partition": {"kind": "iid", "num_clients": 3}},
        {"dataset": "synthetic:3x8x8:4:600", "label_noise": {"kind": "pairflip", "rate": 0.2}},
        {"dataset": "synthetic:1x8x8:3:300", "resize": [6, 6], "sequence": "rows"},
    ],
    ids=["noise-localtest", "imbalance-limited", "rotate", "contrast-rows", "resize",
         "synthetic-noise", "synthetic-resize-rows"],
)  # fmt: skip
def test_a_stored_federation_is_bit_identical_to_one_built_in_memory(
    tmp_path: Path, fields: dict[str, Any]
) -> None:
    data = _data(**fields)
    store = ensure_store(tmp_path / "data", data, seed=3)
    _same_federation(store.federation(), build_federation(data, seed=3))


def test_synthetic_inputs_stay_uint8_on_disk_and_convert_when_gathered(tmp_path: Path) -> None:
    data = _data("synthetic:3x8x8:4:400")
    store = ensure_store(tmp_path / "data", data, seed=0)
    assert store.x.dtype == np.uint8 and store.x.shape == (400, 3, 8, 8)
    client = store.federation().clients[1]
    assert client.x_train.dtype == np.float32 and client.x_train.flags.writeable


def test_the_mapped_index_arrays_are_read_only(tmp_path: Path) -> None:
    store = ensure_store(tmp_path / "data", _data(), seed=0)
    for array in (store.y, store.parts["train"], store.bounds):
        assert isinstance(array, np.memmap)
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0


def test_the_test_set_stays_8_bit_on_disk_and_converts_per_batch(tmp_path: Path) -> None:
    data = _data("synthetic:3x8x8:4:400")
    store = ensure_store(tmp_path / "data", data, seed=0)
    stored = np.load(tmp_path / "data" / "x_test.npy", mmap_mode="r")
    assert stored.dtype == np.uint8  # a quarter of float32's bytes
    fed = store.federation()
    built = build_federation(data, seed=0)
    assert fed.x_test.dtype == np.float32 and fed.x_test.shape == built.x_test.shape
    batch = fed.x_test[10:20]
    assert isinstance(batch, np.ndarray) and batch.tobytes() == built.x_test[10:20].tobytes()


def test_a_client_gathers_its_rows_without_mapping_the_inputs(tmp_path: Path) -> None:
    store = ensure_store(tmp_path / "data", _data("synthetic:3x8x8:4:400"), seed=0)
    store.federation().clients[1]
    maps = Path("/proc/self/maps")
    if maps.exists():  # Linux: no mapping of x.npy is left (nor was one made)
        assert str(tmp_path / "data" / "x.npy") not in maps.read_text()


def test_a_stale_store_is_rebuilt_and_never_read(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    build_store(directory, _data(), seed=0)
    assert open_store(directory, _data(), seed=1) is None  # another seed: not this one's
    assert open_store(directory, _data(val_fraction=0.2), seed=0) is None
    manifest = json.loads((directory / MANIFEST).read_text())
    manifest["key"]["code"] = "older"  # the code that built it changed since
    (directory / MANIFEST).write_text(json.dumps(manifest))
    assert open_store(directory, _data(), seed=0) is None
    store = ensure_store(directory, _data(), seed=0)  # rebuilt, then opened
    assert json.loads((directory / MANIFEST).read_text())["key"]["code"] != "older"
    _same_federation(store.federation(), build_federation(_data(), seed=0))
    assert not list(tmp_path.glob(".data.tmp-*"))  # the temporary directory is gone


def test_clients_read_the_store_and_never_build_the_federation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedrobust.federation.local_round import load_client_data
    from fedrobust.privacy.canaries import scenario_federation

    scenario = parse_scenario({"name": "s", "data": {"dataset": "digits", "partition":
                               PATHOLOGICAL}, "privacy": {"audit": {"canaries": 20}}})  # fmt: skip
    expected = scenario_federation(scenario)  # in memory, with the audit's canaries
    ensure_store(tmp_path / "data", scenario.data, scenario.seed)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a client built the federation")

    monkeypatch.setattr(federated_module, "_build_cached", refuse)
    monkeypatch.setattr(federated_module, "split_rows", refuse)
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "data"))
    monkeypatch.setenv("FEDROBUST_CACHE_DIR", "off")

    class Context:
        node_config = {"partition-id": 2, "num-partitions": 4}

    got = load_client_data(scenario, expected.spec, Context())  # type: ignore[arg-type]
    _same_client(got, expected.clients[2])  # canaries planted after gathering
    fed = scenario_federation(scenario)
    assert isinstance(fed, StoredFederation)
    assert fed.summary() == expected.summary()


def _fake_hf(n: int = 300, seed: int = 0) -> Any:
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 6, 6, 3), dtype=np.uint8)  # (N, H, W, C) pixels
    labels = rng.integers(0, 4, n)
    return Dataset.from_dict({"img": list(images), "label": labels.tolist()})


def test_hugging_face_sources_stream_into_the_store_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_hf()

    def split(name: str, image_key: str | None, label_key: str | None) -> tuple[Any, str, str]:
        return fake, "img", "label"

    monkeypatch.setattr(sources_module, "hf_split", split)
    monkeypatch.setattr(stream_module, "hf_split", split)
    monkeypatch.setattr(stream_module, "CHUNK", 64)  # several chunks, the last one short
    sizes = []
    chunks = stream_module.hf_chunks

    def counted(*args: Any, **kwargs: Any) -> Any:
        for chunk in chunks(*args, chunk=64):
            sizes.append(len(chunk))
            yield chunk

    monkeypatch.setattr(stream_module, "hf_chunks", counted)
    data = _data("hf:fake", partition={"kind": "iid", "num_clients": 3})
    store = ensure_store(tmp_path / "data", data, seed=0)
    assert sizes == [64, 64, 64, 64, 44]
    assert store.x.dtype == np.uint8 and store.x.shape == (300, 3, 6, 6)  # channel-first
    _same_federation(store.federation(), build_federation(data, seed=0))


def test_hugging_face_chunks_refuse_inputs_out_of_range_or_of_another_shape() -> None:
    from datasets import Dataset

    wide = Dataset.from_dict({"img": [np.full((2, 2), 300)] * 3, "label": [0, 1, 0]})
    with pytest.raises(FedrobustError, match="0..255"):
        list(stream_module.hf_chunks(wide, "img", "wide", chunk=2))
    mixed = Dataset.from_dict({"img": [np.zeros((2, 2))] * 2 + [np.zeros((3, 3))], "label":
                               [0, 1, 0]})  # fmt: skip
    with pytest.raises(FedrobustError) as info:
        list(stream_module.hf_chunks(mixed, "img", "mixed", chunk=2))
    assert info.value.where == "data.image_key"


@pytest.mark.slow  # one Flower simulation (~30 s)
def test_a_simulation_trains_from_the_store_where_workers_could_not_build_the_data(
    tmp_path: Path,
) -> None:
    """The npz path is relative to the CLI's directory only: the ServerApp and the Ray
    workers run elsewhere and could not load it, so a round where every sampled client
    replies was read from the store."""
    import os
    import subprocess
    import sys

    cli = tmp_path / "cli"
    cli.mkdir()
    rng = np.random.default_rng(0)
    np.savez(cli / "own.npz", x=rng.integers(0, 256, (240, 1, 6, 6)), y=np.arange(240) % 3)
    doc = {"name": "store", "data": {"dataset": "npz:own.npz", "partition": {"kind": "iid",
           "num_clients": 3}}, "model": {"name": "mlp", "hidden": [8]},
           "train": {"rounds": 1, "fraction_train": 1.0}}  # fmt: skip
    (cli / "s.yaml").write_text(json.dumps(doc))
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "fedrobust.cli", "run", "s.yaml", "--out", str(run)],
        cwd=cli, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["rounds"][0]["aggregated"] == 3 and metrics["rounds"][0]["dropped"] == {}
    assert (run / "data" / MANIFEST).is_file()
