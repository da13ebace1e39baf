"""Rows of a stored ``.npy`` array, read with ``os.pread`` instead of a memory map.

A gather through a memory map (``np.load(mmap_mode="r")[rows]``) maps more than the
rows it reads: on a page fault Linux maps the neighbouring cached pages too (fault
around, 64 KiB), so a client gathering a few thousand rows scattered over a large
dataset ended up mapping most of the file. Those pages count in the process's memory
(RSS; in PSS shared by whoever maps them) as long as the mapping lives. A
:class:`RowFile` copies exactly the rows asked for into a new array: the file's pages
stay in the operating system's page cache (shared by every process reading the file,
and reclaimable), and a process holds only what it gathered.

:class:`FloatRows` is the global test set a server evaluates every round, seen as
float32: each index reads and converts only the rows it selects (an evaluation batch),
so the stored 8-bit pixels are never held as float32 all at once.

Measured with ``benchmarks/shared_memory.py`` (docs/results.md, "Shared data").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fedrobust.data.stream import to_float


class RowFile:
    """A C-ordered ``.npy`` file whose rows (first-axis entries) are read on demand.

    Parameters
    ----------
    path : Path
        The ``.npy`` file (format 1.0 or 2.0, no pickled objects).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self.path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)  # fmt: skip
            shape, fortran, dtype = header(handle)
            self.offset = handle.tell()
        if fortran and len(shape) > 1:
            raise ValueError(f"{self.path}: Fortran-ordered arrays are not row files")
        if dtype.hasobject:
            raise ValueError(f"{self.path}: object arrays are not row files")
        self.shape: tuple[int, ...] = tuple(shape)
        self.dtype: np.dtype = dtype
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, index: Any) -> np.ndarray:
        """The rows ``index`` selects (an int, a slice, a 1-D integer or boolean array), as
        a new writable array of the file's dtype; an int gives one row without its axis."""
        if isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
            return self.read(np.array([index]))[0]
        rows = self._rows(index)
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        if len(rows) == 0 or self.row_bytes == 0:
            return out
        flat = out.reshape(len(rows), -1).view(np.uint8)
        order = np.argsort(rows, kind="stable")  # read in file order
        ordered = rows[order]
        # a run: rows consecutive in the file and in ``out``, read with one call
        cut = (np.diff(ordered) != 1) | (np.diff(order) != 1)
        starts = np.concatenate(([0], np.flatnonzero(cut) + 1))
        counts = np.diff(np.concatenate((starts, [len(rows)])))
        runs = zip(ordered[starts].tolist(), order[starts].tolist(), counts.tolist(), strict=True)
        with self.path.open("rb", buffering=0) as handle:
            for first, target, count in runs:
                self._fill(handle, first, flat[target : target + count])
        return out

    def _rows(self, index: Any) -> np.ndarray:
        """``index`` as the row numbers it selects, by numpy's rules (negatives count from
        the end, a boolean mask must match the rows); anything else is an ``IndexError``."""
        n = len(self)
        if isinstance(index, slice):
            picked = range(n)[index]
            return np.arange(picked.start, picked.stop, picked.step, dtype=np.int64)
        array = np.asarray(index)
        if array.ndim != 1 or not (array.dtype == bool or np.issubdtype(array.dtype, np.integer)
                                   or array.size == 0):  # fmt: skip
            raise IndexError(f"{self.path.name}: rows are chosen by an int, a slice or a 1-D "
                             f"integer or boolean array, not {index!r:.60}")  # fmt: skip
        if array.dtype == bool:
            if len(array) != n:
                raise IndexError(f"{self.path.name}: a mask of {len(array)} for {n} rows")
            return np.flatnonzero(array)
        rows = array.astype(np.int64)
        if len(rows) and (rows.min() < -n or rows.max() >= n):
            raise IndexError(f"{self.path.name}: a row outside 0..{n - 1}")
        return np.where(rows < 0, rows + n, rows)

    def _fill(self, handle: Any, first: int, buffer: np.ndarray) -> None:
        """Fill ``buffer`` (rows of bytes) with the rows from ``first`` on: ``os.preadv``
        where the platform has it, else a seek and a read."""
        view = memoryview(buffer).cast("B")
        done, where = 0, self.offset + first * self.row_bytes
        while done < len(view):
            if hasattr(os, "preadv"):
                got = os.preadv(handle.fileno(), [view[done:]], where + done)
            else:
                handle.seek(where + done)
                got = handle.readinto(view[done:])
            if not got:
                raise OSError(f"{self.path} ends before row {first + len(buffer)}")
            done += got


class FloatRows:
    """A stored input array seen as float32 in [0, 1]: indexing reads the selected rows
    from the file and converts them (:func:`fedrobust.data.stream.to_float`).

    Behaves as a read-only float32 array for what evaluation and the server's features
    do with a test set: ``len``, ``shape``, ``dtype``, indexing (rows as
    :meth:`RowFile.read` takes them, optionally followed by ints and slices within each
    row) and ``np.asarray`` (the whole array, converted).

    Parameters
    ----------
    rows : RowFile
        The stored inputs.
    scale : str
        How 8-bit inputs become floats (the store's ``scale``).
    """

    dtype = np.dtype(np.float32)

    def __init__(self, rows: RowFile, scale: str) -> None:
        self.rows = rows
        self.scale = scale

    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape."""
        return self.rows.shape

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.rows.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.rows.shape, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, tuple):  # rows first, then plain ints and slices within them
            first, rest = (index[0], index[1:]) if index else (slice(None), ())
            if not all(isinstance(i, (int, np.integer, slice)) for i in rest) or any(
                i is Ellipsis or i is None for i in index
            ):
                raise IndexError("FloatRows: after the rows, only ints and slices")
            selected = self[first]
            dropped = isinstance(first, (int, np.integer))  # an int drops the row axis
            return selected[rest] if dropped else selected[(slice(None), *rest)]
        return to_float(self.rows.read(index), self.scale)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))

    def min(self) -> np.floating:
        """The smallest value (the whole array read once)."""
        return np.asarray(self).min()

    def max(self) -> np.floating:
        """The largest value (the whole array read once)."""
        return np.asarray(self).max()
