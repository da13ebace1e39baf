"""A device's own npz (node_config data-path): read, checked against the federation."""

from __future__ import annotations

import numpy as np
import pytest

from fedrobust.data import build_federation
from fedrobust.data.device import load_device_data, write_device_files
from fedrobust.errors import FedrobustError
from fedrobust.models.registry import InputSpec
from fedrobust.scenario import parse_scenario

SPEC = InputSpec(shape=(1, 4, 4), num_classes=3)


def npz(tmp_path, name: str = "d.npz", **arrays: np.ndarray):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_written_client_files_read_back_as_the_simulated_partitions(tmp_path) -> None:
    sc = parse_scenario(
        {"name": "d", "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}}}
    )
    fed = build_federation(sc.data, sc.seed)
    paths = write_device_files(fed, tmp_path)
    assert [p.name for p in paths] == ["client-0.npz", "client-1.npz", "client-2.npz"]
    for path, want in zip(paths, fed.clients, strict=True):
        got = load_device_data(path, fed.spec, 0.5, seed=0)
        np.testing.assert_array_equal(got.x_train, want.x_train)
        np.testing.assert_array_equal(got.y_train, want.y_train)
        np.testing.assert_array_equal(got.x_val, want.x_val)  # kept, not re-split
        np.testing.assert_array_equal(got.y_val, want.y_val)


def test_pixels_channels_last_are_scaled_and_a_seeded_validation_split_is_held_out(
    tmp_path,
) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 4, 4, 1), dtype=np.uint8)
    y = np.arange(20) % 3
    path = npz(tmp_path, x=x, y=y)
    data = load_device_data(path, SPEC, 0.25, seed=7)
    assert data.x_train.shape == (15, 1, 4, 4) and data.x_val.shape == (5, 1, 4, 4)
    assert data.x_train.dtype == np.float32 and data.x_train.max() <= 1.0
    pooled = np.concatenate([data.x_train, data.x_val]).reshape(20, -1)
    expected = (x.astype(np.float32) / 255).reshape(20, -1)
    assert sorted(map(tuple, pooled)) == sorted(map(tuple, expected))  # every example, once
    again = load_device_data(path, SPEC, 0.25, seed=7)
    np.testing.assert_array_equal(again.y_val, data.y_val)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((4, 1, 4, 4))}, "missing array"),
        ({"x": np.zeros((4, 1, 5, 5)), "y": np.zeros(4, int)}, r"expects \(1, 4, 4\)"),
        ({"x": np.zeros((4, 1, 4, 4)), "y": np.array([0, 1, 2, 3])}, "classes are 0..2"),
        ({"x": np.zeros((4, 1, 4, 4)), "y": np.zeros(3, int)}, "has 4 samples but y has 3"),
        ({"x": np.zeros((4, 1, 4, 4)), "y": np.zeros(4) + 0.5}, "integer class"),
        ({"x": np.zeros((4, 1, 4, 4)) + 2.0, "y": np.zeros(4, int)}, r"\[0, 1\]"),
        (
            {"x": np.zeros((4, 1, 4, 4)), "y": np.zeros(4, int), "x_val": np.zeros((1, 1, 4, 4))},
            "x_val and y_val",
        ),
    ],
)
def test_a_file_that_does_not_fit_is_named_with_the_problem(tmp_path, arrays, message) -> None:
    path = npz(tmp_path, **arrays)
    with pytest.raises(FedrobustError, match=message) as info:
        load_device_data(path, SPEC, 0.1, seed=0)
    assert str(path) in info.value.where


def test_missing_and_unreadable_files_are_named(tmp_path) -> None:
    with pytest.raises(FedrobustError, match="no such file") as info:
        load_device_data(tmp_path / "absent.npz", SPEC, 0.1, seed=0)
    assert info.value.where.endswith("absent.npz")
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    with pytest.raises(FedrobustError, match="not a readable npz"):
        load_device_data(bad, SPEC, 0.1, seed=0)


def test_a_local_test_split_is_read_from_the_file_or_held_out_when_asked(tmp_path) -> None:
    sc = parse_scenario({"name": "d", "data": {"dataset": "digits", "local_test_fraction": 0.2,
                         "partition": {"kind": "iid", "num_clients": 2}}})  # fmt: skip
    fed = build_federation(sc.data, sc.seed)
    path = write_device_files(fed, tmp_path)[0]
    got = load_device_data(path, fed.spec, 0.5, seed=0, local_test_fraction=0.5)
    np.testing.assert_array_equal(got.x_test, fed.clients[0].x_test)  # kept, not re-split
    np.testing.assert_array_equal(got.x_train, fed.clients[0].x_train)
    rng = np.random.default_rng(0)
    bare = npz(tmp_path, x=rng.random((20, 1, 4, 4)), y=np.arange(20) % 3)
    data = load_device_data(bare, SPEC, 0.25, seed=7, local_test_fraction=0.2)
    assert len(data.y_val) == 5 and len(data.y_test) == 3 and len(data.y_train) == 12  # type: ignore[arg-type]
    assert load_device_data(bare, SPEC, 0.25, seed=7).y_test is None
