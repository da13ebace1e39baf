"""The federation of a simulation, built once per run into ``RUN_DIR/data/`` and read
by the ServerApp and every Ray worker.

Without it every process of a simulation (the CLI, the ServerApp, each ClientApp
actor) loads the source and splits it, holding the whole dataset as float32: total
memory grows by one dataset per worker. With it, ``run_simulation`` (after the CLI's
checks, before Flower starts: the one moment that precedes the ServerApp and every
client) writes the store; the processes read it, and the operating system keeps one
page-cached copy for all of them. A client reads its partition's rows
(:class:`~fedrobust.data.rowfile.RowFile`: exactly those rows, no memory map of the
inputs) when a message needs them, converting them to float32 then; nothing is kept
between messages. The server reads its test set one evaluation batch at a time
(:class:`~fedrobust.data.rowfile.FloatRows`). The small index arrays are mapped
(``np.load(mmap_mode="r")``).

The store (:data:`STORE_DIR` in the run directory)::

    manifest.json   the key (what determines the federation) and the shapes
    x.npy           the source's inputs in their stored dtype: uint8 for synthetic and
                    8-bit Hugging Face sources (converted per gather, bit for bit as
                    load_source converts them), float32 otherwise or after data.resize
    y.npy           int64 labels
    x_test.npy      the global test set, in x's dtype (read and converted per batch)
    test.npy        its rows
    train.npy, labels.npy, val.npy, local_test.npy
                    every client's rows (and its training labels, noisy under
                    data.label_noise), concatenated; bounds.npy: where each client's
                    part starts

Transforms that draw per client (limited data, imbalance, label noise, the validation
and local test splits) are decided when the store is built (:func:`~fedrobust.data.
federated.split_rows`); the feature shift and the privacy audit's canaries are applied
after gathering, as they are applied to a federation built in memory: a client's data
read from the store are bit-identical to :func:`~fedrobust.data.build_federation`'s.

The key is a SHA-256-able description of everything that determines the federation:
the ``data`` section, the seed, the source of the modules that build it and the
versions of the packages that split it (as in :mod:`fedrobust.data.cache`). A store
under another key is rebuilt by the builder and never used by a reader: a reader that
finds none, or a stale one, builds the federation in memory as before (a warning).
The directory is written beside its final place and renamed into it, so a reader never
sees half a store.

Deployments keep :mod:`fedrobust.data.cache` (one partition per node, on the node's own
disk): there the nodes share no machine. A simulation on a Ray cluster
(``simulation.ray_address``) does not use the store either: its workers may run on
other machines that cannot read the run directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedrobust.data.cache import builder_fingerprint, key_text, source_digest
from fedrobust.data.config import DataConfig
from fedrobust.data.federated import (
    ClientData,
    ClientRows,
    Federation,
    gather_client,
    split_rows,
)
from fedrobust.data.rowfile import FloatRows, RowFile
from fedrobust.data.stream import StreamedSource, stream_source, to_float
from fedrobust.models.registry import InputSpec

log = logging.getLogger("fedrobust.data")

#: Names the store's directory to every process of a simulation (set by run_simulation).
STORE_ENV = "FEDROBUST_STORE_DIR"
FORMAT = 2
MANIFEST = "manifest.json"
#: Modules whose code determines the store beyond the partition cache's.
STORE_SOURCES = ("data/store.py", "data/stream.py", "data/synthetic.py", "data/rowfile.py")
PARTS = ("train", "val", "local_test")

#: What a client's data are finished with after gathering (the audit's canaries).
Finish = Callable[[int, ClientData], ClientData]


def store_key(data: DataConfig, seed: int) -> dict[str, Any]:
    """Everything that determines the stored federation, as JSON-ready values."""
    return {
        "format": FORMAT,
        **builder_fingerprint(),
        "store_code": source_digest(STORE_SOURCES),
        "data": data.model_dump(mode="json"),
        "seed": int(seed),
    }


def build_store(directory: Path, data: DataConfig, seed: int) -> Path:
    """Write the federation of ``data`` and ``seed`` into ``directory`` (replacing what is
    there), streaming the source's chunks to disk; returns ``directory``."""
    directory = Path(directory)
    created = not directory.parent.exists()  # a run directory the data then refuse goes too
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    try:
        source = stream_source(data, seed)
        rows = split_rows(source.y, len(source.classes), data, seed)  # from the labels alone
        shape, dtype = _write_inputs(tmp, source, rows.test)
        np.save(tmp / "y.npy", source.y)
        np.save(tmp / "test.npy", rows.test)
        _write_rows(tmp, rows.clients)
        manifest = {
            "key": store_key(data, seed),
            "shape": list(shape),
            "dtype": dtype,
            "scale": source.scale,
            "classes": source.classes,
            "num_clients": len(rows.clients),
            "unassigned": rows.unassigned,
            "unused_classes": rows.unused_classes,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created:
            shutil.rmtree(directory.parent, ignore_errors=True)
        raise
    return directory


def ensure_store(directory: Path, data: DataConfig, seed: int) -> FederationStore:
    """The store in ``directory`` for ``data`` and ``seed``: opened when a sound one is
    there, else (missing, stale, unreadable) built first."""
    found = open_store(directory, data, seed, quiet=True)
    if found is not None:
        return found
    build_store(directory, data, seed)
    found = open_store(directory, data, seed)
    assert found is not None, "a store just built must open"
    return found


def open_store(
    directory: Path, data: DataConfig, seed: int, quiet: bool = False
) -> FederationStore | None:
    """The store in ``directory`` when it holds the federation of ``data`` and ``seed``;
    ``None`` (with a warning unless ``quiet``) when it is missing, unreadable or stale."""
    return _open(str(Path(directory).resolve()), key_text(store_key(data, seed)), quiet)


#: Stores opened in this process, by (directory, key): a client's every message reuses
#: the mapping. Only stores that opened are kept (a missing one may be built later).
_OPENED: dict[tuple[str, str], FederationStore] = {}


def _open(directory: str, key: str, quiet: bool) -> FederationStore | None:
    if (directory, key) in _OPENED:
        return _OPENED[(directory, key)]
    path = Path(directory)
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        if not quiet:
            log.warning("federation store %s unreadable (%s): building in memory", path, exc)
        return None
    if key_text(manifest.get("key", {})) != key:
        if not quiet:
            log.warning("federation store %s holds another federation: building in memory", path)
        return None
    store = _OPENED[(directory, key)] = FederationStore(path, manifest)
    return store


def run_store(data: DataConfig, seed: int, directory: Path | None = None) -> FederationStore | None:
    """The store in ``directory`` (default: the one :data:`STORE_ENV` names, set in a
    simulation's processes) when it holds this federation; ``None`` outside a
    simulation or when it does not."""
    if directory is None:
        named = os.environ.get(STORE_ENV, "").strip()
        directory = Path(named) if named else None
    return None if directory is None else open_store(directory, data, seed)


class FederationStore:
    """An opened store: its arrays mapped read-only, and the clients gathered from them.

    Parameters
    ----------
    path : Path
        The store's directory.
    manifest : dict
        Its manifest (already checked against the key).
    """

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.data = DataConfig.model_validate(manifest["key"]["data"])
        self.scale: str = manifest["scale"]
        self.y = self._map("y")
        self.bounds = self._map("bounds")
        self.parts = {name: self._map(name) for name in (*PARTS, "labels")}
        self.spec = InputSpec(shape=tuple(manifest["shape"]), num_classes=len(manifest["classes"]))
        # torch warns once per process on a read-only array; reading it is all we do
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

    @property
    def x(self) -> RowFile:
        """The inputs, read row by row (:class:`~fedrobust.data.rowfile.RowFile`): a
        gather holds the rows it read, never pages of the rest (the operating system's
        page cache keeps the file for every process)."""
        return RowFile(self.path / "x.npy")

    def _map(self, name: str) -> np.ndarray:
        return np.load(self.path / f"{name}.npy", mmap_mode="r", allow_pickle=False)

    @property
    def num_clients(self) -> int:
        """Number of clients."""
        return int(self.manifest["num_clients"])

    def rows(self, cid: int) -> ClientRows:
        """Client ``cid``'s rows (views of the mapped index arrays)."""
        start, stop = self.bounds[cid], self.bounds[cid + 1]
        train, val, test = (self.parts[p][start[i] : stop[i]] for i, p in enumerate(PARTS))
        return ClientRows(train=train, val=val, test=test, labels=self.parts["labels"][
            start[0] : stop[0]])  # fmt: skip

    def client(self, cid: int, inputs: bool = True) -> ClientData:
        """Client ``cid``'s data, gathered from the mapped arrays as float32 (new, writable
        arrays); with ``inputs=False`` the labels only (inputs empty, for sizes and the
        summary)."""
        if not 0 <= cid < self.num_clients:
            raise IndexError(f"client {cid} outside 0..{self.num_clients - 1}")
        rows = self.rows(cid)
        labels = ClientRows(*(np.array(part) for part in (rows.train, rows.val, rows.test,
                                                          rows.labels)))  # fmt: skip

        x = self.x if inputs else None

        def take(index: np.ndarray) -> np.ndarray:
            if x is None:
                return np.empty((0, *self.spec.shape), dtype=np.float32)
            return to_float(x.read(index), self.scale)

        return gather_client(take, np.asarray(self.y), labels, self.data, cid)

    def federation(self, finish: Finish | None = None) -> StoredFederation:
        """The federation over this store; ``finish`` completes each gathered client."""
        return StoredFederation(
            spec=self.spec,
            classes=list(self.manifest["classes"]),
            x_test=FloatRows(RowFile(self.path / "x_test.npy"), self.scale),  # type: ignore[arg-type]
            y_test=np.asarray(self.y[self._map("test")]),
            clients=LazyClients(self, finish),
            unassigned=int(self.manifest["unassigned"]),
            unused_classes=list(self.manifest["unused_classes"]),
        )


class LazyClients(Sequence[ClientData]):
    """The clients of a store, each gathered when it is asked for (never kept)."""

    def __init__(self, store: FederationStore, finish: Finish | None) -> None:
        self.store = store
        self.finish = finish

    def __len__(self) -> int:
        return self.store.num_clients

    def get(self, cid: int, inputs: bool = True) -> ClientData:
        """Client ``cid`` (``inputs=False``: labels only), finished."""
        data = self.store.client(cid, inputs)
        return data if self.finish is None else self.finish(cid, data)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self.get(i) for i in range(len(self))[index]]
        cid = int(index) + (len(self) if int(index) < 0 else 0)
        return self.get(cid)

    def __iter__(self) -> Iterator[ClientData]:
        return (self.get(i) for i in range(len(self)))


class StoredFederation(Federation):
    """A :class:`Federation` whose clients are gathered from a store on access; sizes and
    the summary come from the labels alone."""

    clients: LazyClients

    def labels_only(self) -> list[ClientData]:
        """Every client's labels (inputs empty), finished like the clients."""
        return [self.clients.get(cid, inputs=False) for cid in range(len(self.clients))]

    def train_sizes(self) -> list[int]:
        """Each client's number of training examples."""
        return [len(c.y_train) for c in self.labels_only()]

    def summary(self) -> dict[str, object]:
        """As :meth:`Federation.summary`, computed from the labels."""
        return Federation(
            spec=self.spec, classes=self.classes, x_test=self.x_test, y_test=self.y_test,
            clients=self.labels_only(), unassigned=self.unassigned,
            unused_classes=self.unused_classes,
        ).summary()  # fmt: skip

    def with_finish(self, finish: Finish) -> StoredFederation:
        """This federation with ``finish`` applied to every client after gathering."""
        return self.clients.store.federation(finish)


def _write_inputs(
    directory: Path, source: StreamedSource, test: np.ndarray
) -> tuple[tuple[int, ...], str]:
    """Stream ``source``'s chunks into ``x.npy`` and the rows ``test`` (sorted) into
    ``x_test.npy``, both in the chunks' dtype: plain writes, so the builder never maps
    (and holds resident) the arrays it writes. Returns the (shape per example, dtype) of
    ``x``."""
    n = len(source.y)
    start = 0
    first: np.ndarray | None = None
    with (directory / "x.npy").open("wb") as x_out, (directory / "x_test.npy").open("wb") as t_out:
        for chunk in source.chunks:
            if first is None:
                first = chunk
                _header(x_out, chunk.dtype, (n, *chunk.shape[1:]))
                _header(t_out, chunk.dtype, (len(test), *chunk.shape[1:]))
            x_out.write(np.ascontiguousarray(chunk).tobytes())
            lo, hi = np.searchsorted(test, [start, start + len(chunk)])
            t_out.write(np.ascontiguousarray(chunk[test[lo:hi] - start]).tobytes())
            start += len(chunk)
    if first is None or start != n:
        raise ValueError(f"the source gave {start} inputs for {n} labels")
    return tuple(first.shape[1:]), str(first.dtype)


def _header(handle: Any, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """The .npy header of a C-ordered array of ``dtype`` and ``shape``."""
    fields = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": shape}  # fmt: skip
    np.lib.format.write_array_header_1_0(handle, fields)


def _write_rows(directory: Path, clients: list[ClientRows]) -> None:
    """Every client's rows and training labels, concatenated, and where each starts."""
    empty = np.array([], dtype=np.int64)
    for name, pick in (("train", "train"), ("val", "val"), ("local_test", "test"),
                       ("labels", "labels")):  # fmt: skip
        parts = [np.asarray(getattr(c, pick), dtype=np.int64) for c in clients]
        np.save(directory / f"{name}.npy", np.concatenate(parts) if parts else empty)
    counts = np.array([[len(c.train), len(c.val), len(c.test)] for c in clients], dtype=np.int64)
    bounds = np.zeros((len(clients) + 1, 3), dtype=np.int64)
    bounds[1:] = np.cumsum(counts.reshape(-1, 3), axis=0)
    np.save(directory / "bounds.npy", bounds)
