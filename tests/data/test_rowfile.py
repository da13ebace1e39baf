"""Rows of a stored array read with pread: the same values numpy's indexing gives, for
every kind of index, and a float32 view that converts only the rows it reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedrobust.data.rowfile import FloatRows, RowFile
from fedrobust.data.stream import to_float

RNG = np.random.default_rng(0)
ARRAY = RNG.integers(0, 256, (300, 3, 4, 4), dtype=np.uint8)


@pytest.fixture
def rows(tmp_path: Path) -> RowFile:
    np.save(tmp_path / "a.npy", ARRAY)
    return RowFile(tmp_path / "a.npy")


@pytest.mark.parametrize(
    "index",
    [slice(None), slice(5, 50), slice(None, None, -3), slice(290, 400), 7, -1,
     np.array([3, 2, 1, 0, 5, 6, 7, 299]), RNG.permutation(300)[:100],
     ARRAY[:, 0, 0, 0] > 128, np.array([4, 4, 5, 4]), np.array([], dtype=int)],
    ids=["all", "slice", "reversed-step", "past-the-end", "int", "negative", "runs",
         "scattered", "mask", "repeated", "empty"],
)  # fmt: skip
def test_a_read_gives_what_numpy_indexing_gives(rows: RowFile, index: Any) -> None:
    got, expected = rows.read(index), ARRAY[index]
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected)
    assert got.flags.writeable and got.flags.c_contiguous


def test_a_row_outside_the_file_is_refused_as_numpy_refuses_it(rows: RowFile) -> None:
    with pytest.raises(IndexError):
        rows.read(np.array([0, 300]))


def test_a_truncated_file_is_an_error_not_zeros(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", ARRAY)
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(data[: len(data) - 10])
    with pytest.raises(OSError, match="ends before row 300"):
        RowFile(tmp_path / "a.npy").read(slice(290, 300))


def test_float_rows_convert_what_they_select_like_the_whole_array(rows: RowFile) -> None:
    view = FloatRows(rows, "multiply")
    whole = to_float(ARRAY, "multiply")
    assert view.dtype == np.float32 and view.shape == ARRAY.shape and len(view) == 300
    assert np.array_equal(view[20:30], whole[20:30])
    assert np.array_equal(view[(slice(2, 9), 0, 1)], whole[2:9, 0, 1])
    assert np.array_equal(view[(5, 0)], whole[5, 0])
    assert np.array_equal(np.asarray(view), whole)
    assert np.ascontiguousarray(view, dtype=np.float64).dtype == np.float64
    assert float(view.max()) == float(whole.max()) and float(view.min()) == float(whole.min())


def test_float_inputs_pass_through_unchanged(tmp_path: Path) -> None:
    values = RNG.normal(size=(40, 5)).astype(np.float32)
    np.save(tmp_path / "f.npy", values)
    view = FloatRows(RowFile(tmp_path / "f.npy"), "divide")
    assert view[3:9].tobytes() == values[3:9].tobytes()


@pytest.mark.parametrize(
    "index",
    [np.zeros((2, 2), dtype=int), np.array([0.5, 1.5]), True, np.ones(5, dtype=bool), None],
    ids=["2-d", "floats", "bool", "short-mask", "none"],
)
def test_an_index_that_picks_no_rows_is_an_index_error(rows: RowFile, index: Any) -> None:
    with pytest.raises(IndexError):
        rows.read(index)


@pytest.mark.parametrize(
    "index",
    [(Ellipsis, 0), (np.array([0, 1]), np.array([0, 1])), (slice(0, 2), None)],
    ids=["ellipsis", "two-arrays", "new-axis"],
)
def test_float_rows_refuse_what_they_would_not_index_as_numpy_does(
    rows: RowFile, index: Any
) -> None:
    with pytest.raises(IndexError):
        FloatRows(rows, "multiply")[index]
