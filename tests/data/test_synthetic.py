"""The seeded synthetic source: ``data.dataset: synthetic:<C>x<H>x<W>:<classes>:<n>``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedrobust.data.sources import load_source
from fedrobust.data.synthetic import CHUNK, parse_synthetic, synthetic_chunks
from fedrobust.errors import FedrobustError
from fedrobust.scenario import parse_scenario


def test_the_name_gives_shape_classes_and_size() -> None:
    spec = parse_synthetic("synthetic:3x32x24:7:500")
    assert (spec.shape, spec.classes, spec.n) == ((3, 32, 24), 7, 500)
    assert spec.nbytes == 500 * 3 * 32 * 24


def test_source_has_the_shape_dtype_range_and_balanced_labels() -> None:
    source = load_source("synthetic:3x16x16:5:103", seed=1)
    assert source.x.shape == (103, 3, 16, 16) and source.x.dtype == np.float32
    assert source.y.dtype == np.int64 and source.classes == ["0", "1", "2", "3", "4"]
    assert 0.0 <= source.x.min() and source.x.max() <= 1.0
    assert np.all(np.isin(np.round(source.x * 255, 3), np.arange(256)))  # 8-bit pixels
    assert np.bincount(source.y).tolist() == [21, 21, 21, 20, 20]


def test_chunks_are_uint8_and_at_most_chunk_long() -> None:
    spec = parse_synthetic(f"synthetic:1x4x4:2:{CHUNK + 10}")
    chunks = list(synthetic_chunks(spec, seed=0))
    assert [len(y) for _, y in chunks] == [CHUNK, 10]
    assert all(x.dtype == np.uint8 and x.shape[1:] == (1, 4, 4) for x, _ in chunks)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = load_source("synthetic:3x8x8:4:300", seed=3)
    b = load_source("synthetic:3x8x8:4:300", seed=3)
    c = load_source("synthetic:3x8x8:4:300", seed=4)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)


def test_a_linear_model_learns_it_and_no_single_pixel_does() -> None:
    source = load_source("synthetic:3x16x16:4:1200", seed=0)
    x = torch.from_numpy(source.x.reshape(len(source.y), -1))
    y = torch.from_numpy(source.y)
    train, test = slice(0, 900), slice(900, None)
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], 4)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-3)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[train] - 0.5), y[train]).backward()
        opt.step()
    accuracy = float((model(x[test] - 0.5).argmax(1) == y[test]).float().mean())
    assert accuracy > 0.5  # chance is 0.25
    means = torch.stack([x[train][y[train] == k].mean(0) for k in range(4)])  # (K, D)
    nearest = (x[test][:, :, None] - means.T[None]).abs().argmin(2)  # per pixel
    best_pixel = float((nearest == y[test][:, None]).float().mean(0).max())
    assert best_pixel < accuracy - 0.15


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("synthetic:3x32:10:100", "is not synthetic:<C>x<H>x<W>"),
        ("synthetic:3x32x32:10", "is not synthetic:<C>x<H>x<W>"),
        ("synthetic:3x32x32:ten:100", "is not synthetic:<C>x<H>x<W>"),
        ("synthetic:3x-32x32:10:100", "is not synthetic:<C>x<H>x<W>"),
        ("synthetic:0x32x32:10:100", "channels must be 1..64"),
        ("synthetic:3x0x32:10:100", "height must be 1..4096"),
        ("synthetic:3x32x5000:10:100", "width must be 1..4096"),
        ("synthetic:3x32x32:1:100", "at least 2 classes"),
        ("synthetic:3x32x32:10:0", "must be at least the number of classes"),
        ("synthetic:3x32x32:10:5", "must be at least the number of classes"),
        ("synthetic:3x1024x1024:10:100000", "exceeds the 16 GiB limit"),
    ],
)
def test_a_malformed_name_is_refused_on_data_dataset(name: str, words: str) -> None:
    with pytest.raises(FedrobustError) as info:
        load_source(name)
    assert info.value.where == "data.dataset" and words in info.value.what
    with pytest.raises(FedrobustError) as info:
        parse_scenario({"name": "x", "data": {"dataset": name}})
    assert info.value.where == "data.dataset" and words in info.value.what
