"""One client's partition, cached on disk between ClientApp processes.

In a deployment Flower starts a new ClientApp process for every message, and a client
without its own data (no ``data-path``) would rebuild the whole federation each time:
load the source, hold out the test set, partition, transform; it needs one partition
of it. The first message of a process that finds no cache builds it and writes this
client's :class:`~fedrobust.data.federated.ClientData` to
``<cache dir>/partition-<digest>.npz``; later processes read that file.

The digest is a SHA-256 over everything that determines the partition: the ``data``
section, the seed, the partition id, any extra settings the caller's builder uses
(the privacy audit's canaries), the source of the modules that build it, and the
versions of the packages that split it. The file stores that key and a SHA-256 of its
arrays; a file that cannot be read, holds another key or fails its checksum is rebuilt
and overwritten, never used. Files are written atomically (a temporary file renamed
over the old one), so concurrent processes never read half a file. The checksum
detects corruption, not an attacker who can write the cache directory: keep it private
to the user running the node (it is created with mode 0700).

Where (the first that is set): ``node_config`` ``cache-dir``, the environment variable
``FEDROBUST_CACHE_DIR``, else ``$XDG_CACHE_HOME/fedrobust/partitions`` (by default
``~/.cache/fedrobust/partitions``). ``off`` (or an empty value) turns the cache off.
A device's own data (``data-path``) is never cached: it is a file already.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fedrobust.data.config import DataConfig
from fedrobust.data.federated import ClientData
from fedrobust.rundir import write_atomic

log = logging.getLogger("fedrobust.data")

CACHE_ENV = "FEDROBUST_CACHE_DIR"
NODE_CONFIG_KEY = "cache-dir"
OFF = frozenset({"", "off", "none"})
FORMAT = 1
KEY_ENTRY = "__key__"
SUM_ENTRY = "__sha256__"
ARRAYS = ("x_train", "y_train", "y_train_clean", "x_val", "y_val", "x_test", "y_test")
OPTIONAL = frozenset({"x_test", "y_test"})
#: Modules (relative to the package) whose code determines a partition.
BUILDER_SOURCES = (
    "data/augment.py",
    "data/config.py",
    "data/federated.py",
    "data/partition.py",
    "data/sequence.py",
    "data/sources.py",
    "data/synthetic.py",
    "data/transforms.py",
    "privacy/canaries.py",
    "seeds.py",
)
#: Distributions whose behaviour determines a partition (splits, partitioners, sources).
BUILDER_PACKAGES = ("numpy", "scikit-learn", "flwr-datasets", "datasets", "mlxtend", "torch")


def cache_dir(
    node_config: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Path | None:
    """Where this node caches its partition; ``None`` when the cache is off.

    Parameters
    ----------
    node_config : mapping
        The node's ``node_config`` (its ``cache-dir`` comes first).
    environ : mapping, optional
        The environment (default ``os.environ``): ``FEDROBUST_CACHE_DIR``, then
        ``XDG_CACHE_HOME``.
    """
    env = os.environ if environ is None else environ
    for value in (node_config.get(NODE_CONFIG_KEY), env.get(CACHE_ENV)):
        if value is not None:
            text = str(value).strip()
            return None if text.lower() in OFF else Path(text).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "fedrobust" / "partitions"


@functools.cache
def source_digest(sources: tuple[str, ...]) -> str:
    """SHA-256 of the source of the package's modules ``sources`` (paths relative to
    ``fedrobust/``; a missing file counts as empty)."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for rel in sources:
        path = root / rel
        digest.update(rel.encode())
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()


def _builder_code() -> str:
    """SHA-256 of the source of :data:`BUILDER_SOURCES`."""
    return source_digest(BUILDER_SOURCES)


@functools.cache
def _builder_packages() -> dict[str, str]:
    """Installed versions of :data:`BUILDER_PACKAGES` (``-`` when one is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in BUILDER_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "-"
    return found


def builder_fingerprint() -> dict[str, Any]:
    """The code and the package versions that build a federation (part of every key)."""
    return {"code": _builder_code(), "packages": _builder_packages()}


def partition_key(
    data: DataConfig, seed: int, partition: int, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Everything that determines one client's partition, as JSON-ready values.

    Parameters
    ----------
    data : DataConfig
        The scenario's ``data`` section.
    seed : int
        The scenario's seed.
    partition : int
        The client's partition id.
    extra : mapping, optional
        Further settings the builder uses (e.g. the privacy audit's section).
    """
    return {
        "format": FORMAT,
        "code": _builder_code(),
        "packages": _builder_packages(),
        "data": data.model_dump(mode="json"),
        "seed": int(seed),
        "partition": int(partition),
        "extra": dict(extra) if extra is not None else None,
    }


def key_text(key: Mapping[str, Any]) -> str:
    """The canonical JSON of a key (sorted, compact)."""
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def partition_path(directory: Path, key: Mapping[str, Any]) -> Path:
    """The cache file of ``key`` in ``directory``."""
    name = hashlib.sha256(key_text(key).encode()).hexdigest()[:32]
    return directory / f"partition-{name}.npz"


def _checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over each array's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _arrays(data: ClientData) -> dict[str, np.ndarray]:
    """The arrays of ``data`` by field name (a missing local test split is left out)."""
    found = {name: getattr(data, name) for name in ARRAYS}
    return {name: np.asarray(value) for name, value in found.items() if value is not None}


def write_partition(path: Path, key: Mapping[str, Any], data: ClientData) -> None:
    """Store ``data`` under ``key`` at ``path``, atomically, with its checksum."""
    arrays = _arrays(data)
    entries = {
        **arrays,
        KEY_ENTRY: np.array(key_text(key)),
        SUM_ENTRY: np.array(_checksum(arrays)),
    }
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, lambda handle: np.savez(handle, **entries))


def read_partition(path: Path, key: Mapping[str, Any]) -> ClientData | None:
    """The partition stored at ``path`` under ``key``; ``None`` when the file is missing,
    unreadable, stored under another key, incomplete, or fails its checksum."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = {name: archive[name] for name in archive.files}
    except Exception as exc:  # zipfile, ValueError, OSError, EOFError: not a valid npz
        log.warning("partition cache %s unreadable (%s): rebuilding it", path, exc)
        return None
    stored_key = stored.pop(KEY_ENTRY, None)
    stored_sum = stored.pop(SUM_ENTRY, None)
    if stored_key is None or str(stored_key) != key_text(key):
        log.warning("partition cache %s holds another partition: rebuilding it", path)
        return None
    missing = [name for name in ARRAYS if name not in stored and name not in OPTIONAL]
    unknown = sorted(set(stored) - set(ARRAYS))
    if missing or unknown or (("x_test" in stored) != ("y_test" in stored)):
        log.warning("partition cache %s is incomplete: rebuilding it", path)
        return None
    if stored_sum is None or str(stored_sum) != _checksum(stored):
        log.warning("partition cache %s fails its checksum: rebuilding it", path)
        return None
    return ClientData(**stored)


def cached_partition(
    directory: Path | None, key: Mapping[str, Any], build: Callable[[], ClientData]
) -> ClientData:
    """This client's partition: read from ``directory`` when a sound file holds ``key``,
    else ``build()`` and stored there for the next process.

    Parameters
    ----------
    directory : Path or None
        The cache directory (:func:`cache_dir`); ``None``: no cache, just ``build()``.
    key : mapping
        What determines the partition (:func:`partition_key`).
    build : callable
        Builds the partition (the federation, then this client's share).

    A cache that cannot be written (read-only, full) costs a warning, not the round.
    """
    if directory is None:
        return build()
    path = partition_path(directory, key)
    found = read_partition(path, key)
    if found is not None:
        return found
    data = build()
    try:
        write_partition(path, key, data)
    except OSError as exc:
        log.warning("partition cache %s not written (%s)", path, exc)
    return data
