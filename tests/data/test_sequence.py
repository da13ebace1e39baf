"""data.sequence: images read row by row, and npz files of sequences (N, T, F)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedrobust.data.config import DataConfig
from fedrobust.data.federated import build_federation
from fedrobust.data.sequence import read_rows
from fedrobust.errors import FedrobustError


def test_each_row_is_one_step_with_the_channels_of_a_pixel_together() -> None:
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # (N, C, H, W)
    seq = read_rows(x)
    assert seq.shape == (2, 4, 15)  # T = H, F = W * C
    n, t, w, c = 1, 2, 3, 1
    assert seq[n, t, w * 3 + c] == x[n, c, t, w]


def test_flat_inputs_cannot_be_read_as_rows() -> None:
    with pytest.raises(FedrobustError) as info:
        read_rows(np.zeros((4, 64), dtype=np.float32))
    assert info.value.where == "data.sequence"


def test_rows_make_every_split_of_digits_a_sequence() -> None:
    cfg = DataConfig(dataset="digits", sequence="rows", partition={"kind": "iid", "num_clients": 2})
    fed = build_federation(cfg, 0)
    assert fed.spec.shape == (8, 8)
    assert fed.x_test.shape[1:] == (8, 8)
    for client in fed.clients:
        assert client.x_train.shape[1:] == client.x_val.shape[1:] == (8, 8)
    plain = build_federation(cfg.model_copy(update={"sequence": None}), 0)
    assert np.array_equal(plain.x_test[:, 0], fed.x_test)  # the same images, by rows


def test_an_npz_of_sequences_loads_as_t_steps_of_f_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((60, 12, 3), dtype=np.float32)  # N, T, F
    y = np.repeat([0, 1, 2], 20)
    np.savez(tmp_path / "series.npz", x=x, y=y)
    cfg = DataConfig(
        dataset=f"npz:{tmp_path / 'series.npz'}",
        sequence="rows",
        partition={"kind": "iid", "num_clients": 3},
    )
    fed = build_federation(cfg, 0)
    assert fed.spec.shape == (12, 3) and fed.spec.num_classes == 3
    assert fed.x_test.shape[1:] == (12, 3)
    assert any(np.array_equal(fed.x_test[0], sample) for sample in x)


def test_sequence_is_none_by_default() -> None:
    assert DataConfig().sequence is None
    with pytest.raises(ValueError):
        DataConfig(sequence="columns")
