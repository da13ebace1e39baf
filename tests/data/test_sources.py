"""Data sources: bundled sets, npz files and Hugging Face datasets built in the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedrobust.data.sources import load_source
from fedrobust.errors import FedrobustError


def test_bundled_digits_and_mnist_are_real_and_scaled() -> None:
    digits = load_source("digits")
    assert digits.x.shape == (1797, 1, 8, 8)
    assert digits.num_classes == 10
    mnist = load_source("mnist-5k")
    assert mnist.x.shape == (5000, 1, 28, 28)
    for source in (digits, mnist):
        assert source.x.dtype == np.float32
        assert 0.0 <= source.x.min() and source.x.max() <= 1.0
        assert np.bincount(source.y).min() > 100  # every digit class is present


def test_npz_uint8_images_channel_last_are_scaled_and_transposed(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(20, 6, 6, 3), dtype=np.uint8)
    y = np.array([3, 7] * 10)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    source = load_source(f"npz:{tmp_path / 'd.npz'}")
    assert source.x.shape == (20, 3, 6, 6)
    assert np.allclose(source.x[0, 1], x[0, :, :, 1] / 255.0)
    assert source.classes == ["3", "7"]
    assert set(source.y) == {0, 1}


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"x": np.zeros((4, 3))}, "missing array(s) ['y']"),
        ({"x": np.zeros((4, 3)), "y": np.zeros(5)}, "4 samples but y has 5"),
        ({"x": np.full((4, 3), 7.0), "y": np.array([0, 1, 0, 1])}, "must lie in [0, 1]"),
        ({"x": np.full((4, 3), np.nan), "y": np.array([0, 1, 0, 1])}, "NaN"),
        ({"x": np.zeros((4, 3)), "y": np.array([0.5, 1, 0, 1])}, "integer class labels"),
        ({"x": np.zeros((4, 3)), "y": np.zeros(4)}, "at least two classes"),
    ],
)
def test_malformed_npz_names_the_file(tmp_path: Path, arrays: dict, words: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(FedrobustError) as info:
        load_source(f"npz:{path}")
    assert info.value.where == str(path)
    assert words in info.value.what


def test_missing_and_corrupt_npz(tmp_path: Path) -> None:
    with pytest.raises(FedrobustError, match="no such file"):
        load_source(f"npz:{tmp_path / 'absent.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(FedrobustError, match="not a readable npz"):
        load_source(f"npz:{tmp_path / 'junk.npz'}")


def test_hf_dataset_loads_through_federated_dataset(tmp_path: Path) -> None:
    """A datasets.Dataset saved locally goes through flwr-datasets' FederatedDataset."""
    from datasets import Dataset

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(30, 5, 5), dtype=np.uint8)
    labels = [i % 3 for i in range(30)]
    Dataset.from_dict({"img": images.tolist(), "label": labels}).to_parquet(
        str(tmp_path / "train.parquet")
    )
    source = load_source(f"hf:{tmp_path}")
    assert source.x.shape == (30, 1, 5, 5)
    assert np.allclose(source.x[4, 0], images[4] / 255.0)
    assert source.y.tolist() == labels
    with pytest.raises(FedrobustError) as info:
        load_source(f"hf:{tmp_path}", label_key="target")
    assert info.value.where == "data.label_key"


def test_unloadable_hf_dataset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FedrobustError) as info:
        load_source(f"hf:{tmp_path / 'no-such-dataset'}")
    assert info.value.where == "data.dataset"
