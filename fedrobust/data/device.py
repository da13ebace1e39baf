"""A client's own data, from an npz file on the device (``node_config`` ``data-path``).

The file holds ``x`` and ``y`` (its training data) and, optionally, ``x_val`` and
``y_val``; without them, ``val_fraction`` of the examples are held out for local
validation, chosen with the scenario's seed. Inputs follow the same rules as every
source (0..255 integers or floats in [0, 1]) and must have the server's input shape,
as (N, C, H, W), (N, H, W, C), or (N, H, W) for one channel; (N, D) for vectors.
Labels are the federation's class indices, 0..K-1, as the server's dataset numbers them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedrobust.data.federated import ClientData, Federation
from fedrobust.data.sources import scale_inputs
from fedrobust.errors import FedrobustError
from fedrobust.models.registry import InputSpec
from fedrobust.seeds import Stream, stream

TRAIN_KEYS = ("x", "y")
VAL_KEYS = ("x_val", "y_val")
TEST_KEYS = ("x_test", "y_test")


def device_file(directory: Path, index: int) -> Path:
    """Where client ``index``'s file lies in a directory of device files."""
    return directory / f"client-{index}.npz"


def read_device_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a device file: ``x`` and ``y``; ``x_val``/``y_val`` and
    ``x_test``/``y_test`` when present.

    Checks what can be checked without the federation (the file is there, readable, and
    holds the arrays it must); :func:`load_device_data` checks them against the spec.

    Raises
    ------
    FedrobustError
        Naming the file.
    """
    where = str(path)
    if not path.is_file():
        raise FedrobustError(where, "no such file (node_config data-path)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            files = set(archive.files)
            arrays = {
                key: archive[key] for key in (*TRAIN_KEYS, *VAL_KEYS, *TEST_KEYS) if key in files
            }
    except Exception as exc:  # zipfile/ValueError/OSError: all mean "not a valid npz"
        raise FedrobustError(where, f"not a readable npz file ({exc})") from None
    missing = [key for key in TRAIN_KEYS if key not in arrays]
    if missing:
        raise FedrobustError(where, f"missing array(s) {missing}; found {sorted(files)}")
    for x_key, y_key in (VAL_KEYS, TEST_KEYS):
        if (x_key in arrays) != (y_key in arrays):
            raise FedrobustError(where, f"{x_key} and {y_key} come together: give both or neither")
    return arrays


def load_device_data(
    path: Path, spec: InputSpec, val_fraction: float, seed: int, local_test_fraction: float = 0.0
) -> ClientData:
    """Read and check the npz at ``path`` against the federation's ``spec``.

    Parameters
    ----------
    path : Path
        The device's npz file.
    spec : InputSpec
        Input shape and number of classes of the federation (sent by the server).
    val_fraction : float
        Share held out for validation when the file has no ``x_val``/``y_val``.
    seed : int
        Seed of the validation and local test splits.
    local_test_fraction : float
        Share held out as the local test split when the file has no ``x_test``/``y_test``
        (0: none).

    Raises
    ------
    FedrobustError
        Naming the file, when it is missing, unreadable, or its arrays do not fit.
    """
    where = str(path)
    arrays = read_device_arrays(path)
    x, y = _checked(arrays["x"], arrays["y"], spec, where, "x", "y")
    if VAL_KEYS[0] in arrays:
        x_val, y_val = _checked(arrays["x_val"], arrays["y_val"], spec, where, "x_val", "y_val")
    else:
        order = stream(seed, Stream.HOLDOUT).permutation(len(y))
        n_val = int(len(y) * val_fraction) if len(y) > 1 else 0
        val, train = order[:n_val], np.sort(order[n_val:])
        x, y, x_val, y_val = x[train], y[train], x[val], y[val]
    x_test = y_test = None
    if TEST_KEYS[0] in arrays:
        x_test, y_test = _checked(arrays["x_test"], arrays["y_test"], spec, where, *TEST_KEYS)
    elif local_test_fraction > 0:
        order = stream(seed, Stream.HOLDOUT, 1).permutation(len(y))
        n_test = int(len(y) * local_test_fraction) if len(y) > 2 else 0
        test, train = order[:n_test], np.sort(order[n_test:])
        x, y, x_test, y_test = x[train], y[train], x[test], y[test]
    return ClientData(
        x_train=x, y_train=y, y_train_clean=y, x_val=x_val, y_val=y_val, x_test=x_test,
        y_test=y_test,
    )  # fmt: skip


def _layout(x: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``x`` in the federation's layout: (N, H, W) and (N, H, W, C) become (N, C, H, W)."""
    if len(spec.shape) != 3:
        return x
    c, h, w = spec.shape
    if x.shape[1:] == (h, w) and c == 1:
        return x[:, None]
    if x.shape[1:] == (h, w, c) and x.shape[1:] != (c, h, w):
        return np.transpose(x, (0, 3, 1, 2))
    return x


def _checked(
    x: np.ndarray, y: np.ndarray, spec: InputSpec, where: str, x_key: str, y_key: str
) -> tuple[np.ndarray, np.ndarray]:
    if len(x) != len(y):
        raise FedrobustError(where, f"{x_key} has {len(x)} samples but {y_key} has {len(y)}")
    if len(y) == 0:
        raise FedrobustError(where, f"{x_key} is empty")
    x = _layout(scale_inputs(x, f"{where} ({x_key})"), spec)
    if tuple(x.shape[1:]) != tuple(spec.shape):
        raise FedrobustError(
            where,
            f"{x_key} samples have shape {tuple(x.shape[1:])} but the federation's model "
            f"expects {tuple(spec.shape)}",
        )
    y = np.asarray(y)
    if y.ndim != 1:
        raise FedrobustError(where, f"{y_key} must be one label per sample, got {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or np.all(np.mod(y, 1) == 0)):
        raise FedrobustError(where, f"{y_key} must hold integer class indices")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= spec.num_classes:
        raise FedrobustError(
            where,
            f"{y_key} holds labels {int(y.min())}..{int(y.max())}; the federation's classes "
            f"are 0..{spec.num_classes - 1}",
        )
    return np.ascontiguousarray(x, dtype=np.float32), y


def write_device_files(fed: Federation, out: Path) -> list[Path]:
    """Write each client's data as ``out/client-<i>.npz`` (x, y, x_val, y_val; x_test and
    y_test with a local test split).

    What a simulation would give client ``i``, as a file to copy onto device ``i``
    (``node_config`` ``data-path``). Returns the paths written.
    """
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, client in enumerate(fed.clients):
        path = device_file(out, index)
        arrays = {"x": client.x_train, "y": client.y_train, "x_val": client.x_val}
        arrays["y_val"] = client.y_val
        if client.x_test is not None and client.y_test is not None:
            arrays["x_test"], arrays["y_test"] = client.x_test, client.y_test
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
        paths.append(path)
    return paths
