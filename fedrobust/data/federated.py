"""Build the federation's data: a global test set and one partition per client.

Steps, in order, each seeded from the scenario seed so server and clients build
the same split independently:

1. load the source (resized with ``resize``, then read as sequences under
``sequence``); 2. hold out a stratified global test set (``test_fraction``); 3. split
the rest with the flwr-datasets partitioner; 4. per client: split off validation
(``val_fraction``) and a local test split (``local_test_fraction``), then limited data,
long-tail imbalance and label noise on the training part only; a feature shift
(``feature_shift``) on all three.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from fedrobust.data.config import DataConfig
from fedrobust.data.sequence import as_sequences
from fedrobust.data.sources import Source, load_source
from fedrobust.data.transforms import (
    apply_feature_shift,
    apply_imbalance,
    apply_label_noise,
    apply_limited,
    resize_images,
)
from fedrobust.errors import FedrobustError
from fedrobust.extras import require
from fedrobust.models import InputSpec
from fedrobust.seeds import Stream, stream

log = logging.getLogger("fedrobust.data")


@dataclass
class ClientData:
    """One client's data.

    Parameters
    ----------
    x_train, y_train : np.ndarray
        Training inputs and the labels the client sees (noisy if label noise is set).
    y_train_clean : np.ndarray
        True labels of the training inputs (for measuring the noise rate only).
    x_val, y_val : np.ndarray
        Local validation data (clean labels).
    x_test, y_test : np.ndarray, optional
        The client's local test split (``data.local_test_fraction``; clean labels);
        ``None`` without one.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    y_train_clean: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def has_local_test(self) -> bool:
        """Whether the client holds a non-empty local test split."""
        return self.y_test is not None and len(self.y_test) > 0

    @property
    def noise_rate(self) -> float:
        """Measured share of training labels that differ from the truth."""
        if len(self.y_train) == 0:
            return 0.0
        return float(np.mean(self.y_train != self.y_train_clean))


@dataclass
class Federation:
    """The whole federated dataset."""

    spec: InputSpec
    classes: list[str]
    x_test: np.ndarray
    y_test: np.ndarray
    clients: Sequence[ClientData] = field(default_factory=list)
    unassigned: int = 0
    unused_classes: list[int] = field(default_factory=list)

    def train_sizes(self) -> list[int]:
        """Each client's number of training examples (a store answers from its labels)."""
        return [len(c.y_train) for c in self.clients]

    def summary(self) -> dict[str, object]:
        """Sizes, label histograms and measured noise: recorded in every run.

        ``unassigned`` counts pool samples no client received (a pathological or
        size split may leave some out); ``unused_classes`` lists the classes of the
        training pool that no client received at all.
        """
        k = self.spec.num_classes
        per_client = [
            {
                "client": cid,
                "train": len(c.y_train),
                "val": len(c.y_val),
                "local_test": 0 if c.y_test is None else len(c.y_test),
                "label_histogram": np.bincount(c.y_train, minlength=k).tolist(),
                "noise_rate": round(c.noise_rate, 6),
            }
            for cid, c in enumerate(self.clients)
        ]
        noisy = sum(int(np.sum(c.y_train != c.y_train_clean)) for c in self.clients)
        total = sum(len(c.y_train) for c in self.clients)
        return {
            "num_classes": k,
            "input_shape": list(self.spec.shape),
            "test": len(self.y_test),
            "train_total": total,
            "noise_rate": round(noisy / total, 6) if total else 0.0,
            "unassigned": self.unassigned,
            "unused_classes": list(self.unused_classes),
            "clients": per_client,
        }


def _held_out_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    require("data.test_fraction", "sklearn")
    from sklearn.model_selection import train_test_split  # scikit-learn: ~1.2 s to import

    rows = np.arange(len(y))
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    try:
        pool, test = train_test_split(
            rows, test_size=fraction, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        raise FedrobustError("data.test_fraction", str(exc)) from None
    return np.sort(pool), np.sort(test)


def build_federation(cfg: DataConfig, seed: int) -> Federation:
    """Build (or fetch from this process's cache) the federation for ``cfg`` and ``seed``."""
    return _build_cached(cfg.model_dump_json(), seed)


@functools.lru_cache(maxsize=4)
def _build_cached(cfg_json: str, seed: int) -> Federation:
    cfg = DataConfig.model_validate_json(cfg_json)
    source = load_source(cfg.dataset, cfg.image_key, cfg.label_key, seed=seed)
    if cfg.resize is not None:
        source = replace(source, x=resize_images(source.x, tuple(cfg.resize), "data.resize"))
    return _split(as_sequences(source, cfg.sequence), cfg, seed)


@dataclass(frozen=True)
class ClientRows:
    """Where one client's data sit in the source: row indices (and the training labels
    the client sees).

    Parameters
    ----------
    train, val, test : np.ndarray
        Rows of the training part, the validation part and the local test split
        (empty without ``data.local_test_fraction``).
    labels : np.ndarray
        The training labels the client sees (noisy under ``data.label_noise``).
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class SplitRows:
    """The federation as row indices into the source: what :func:`split_rows` decides.

    Parameters
    ----------
    test : np.ndarray
        Rows of the global test set.
    clients : list[ClientRows]
        Each client's rows.
    unassigned : int
        Pool samples no client received.
    unused_classes : list[int]
        Classes of the pool no client received.
    """

    test: np.ndarray
    clients: list[ClientRows]
    unassigned: int
    unused_classes: list[int]


def split_rows(y: np.ndarray, num_classes: int, cfg: DataConfig, seed: int) -> SplitRows:
    """Decide the federation from the labels alone: the held-out test set, the
    partitions, each client's validation and local test split, limited data, imbalance
    and label noise (every draw from its seeded stream, in a fixed order)."""
    # flwr-datasets and Hugging Face datasets (~0.9 s): only when a federation is split
    require("data.partition", "flwr_datasets", "datasets")
    from fedrobust.data.partition import partition_indices

    k = num_classes
    pool, test = _held_out_split(y, cfg.test_fraction, seed)
    parts = partition_indices(y[pool], cfg.partition, seed)
    tail_order = stream(seed, Stream.LONG_TAIL).permutation(k)
    clients = []
    for cid, part in enumerate(parts):
        rng = stream(seed, Stream.PARTITION, cid)
        rows = pool[rng.permutation(part)]
        n_val = int(len(rows) * cfg.val_fraction) if len(rows) > 1 else 0
        n_test = int(len(rows) * cfg.local_test_fraction) if len(rows) > 2 else 0
        val, test_rows = rows[:n_val], np.sort(rows[n_val : n_val + n_test])
        train = np.sort(rows[n_val + n_test :])
        if cfg.limited is not None:
            train = apply_limited(train, cfg.limited, rng)
        if cfg.imbalance is not None:
            train = apply_imbalance(train, y, cfg.imbalance, k, tail_order, rng)
        clean = y[train]
        noisy = (
            clean if cfg.label_noise is None else apply_label_noise(clean, cfg.label_noise, k, rng)
        )
        clients.append(ClientRows(train=train, val=val, test=test_rows, labels=noisy))
    unassigned = len(pool) - sum(len(p) for p in parts)
    given = np.concatenate(parts) if parts else np.array([], dtype=np.int64)
    unused = sorted(set(y[pool].tolist()) - set(y[pool][given].tolist()))
    if unassigned:
        log.warning(unassigned_note(unassigned, len(pool), unused, cfg.partition.kind))
    return SplitRows(
        test=test, clients=clients, unassigned=unassigned, unused_classes=[int(c) for c in unused]
    )


def gather_client(
    take: Callable[[np.ndarray], np.ndarray],
    y: np.ndarray,
    rows: ClientRows,
    cfg: DataConfig,
    cid: int,
) -> ClientData:
    """Client ``cid``'s data from its rows: ``take(rows)`` gives the float32 inputs of
    those rows (from memory or a store), then the feature shift."""
    local_test = cfg.local_test_fraction > 0
    client = ClientData(
        x_train=take(rows.train),
        y_train=rows.labels,
        y_train_clean=y[rows.train],
        x_val=take(rows.val),
        y_val=y[rows.val],
        x_test=take(rows.test) if local_test else None,
        y_test=y[rows.test] if local_test else None,
    )
    if cfg.feature_shift is not None:
        client = _shifted(client, cfg, cid)
    return client


def _split(source: Source, cfg: DataConfig, seed: int) -> Federation:
    rows = split_rows(source.y, source.num_classes, cfg, seed)

    def take(index: np.ndarray) -> np.ndarray:
        return source.x[index]

    return Federation(
        spec=InputSpec(shape=tuple(source.x.shape[1:]), num_classes=source.num_classes),
        classes=source.classes,
        x_test=source.x[rows.test],
        y_test=source.y[rows.test],
        clients=[gather_client(take, source.y, r, cfg, cid) for cid, r in enumerate(rows.clients)],
        unassigned=rows.unassigned,
        unused_classes=rows.unused_classes,
    )


def _shifted(client: ClientData, cfg: DataConfig, cid: int) -> ClientData:
    """``client`` with every input set under its feature shift."""
    assert cfg.feature_shift is not None
    n = cfg.partition.num_clients

    def shift(x: np.ndarray | None) -> np.ndarray | None:
        return None if x is None else apply_feature_shift(x, cfg.feature_shift, cid, n)  # type: ignore[arg-type]

    return ClientData(
        x_train=shift(client.x_train),  # type: ignore[arg-type]
        y_train=client.y_train,
        y_train_clean=client.y_train_clean,
        x_val=shift(client.x_val),  # type: ignore[arg-type]
        y_val=client.y_val,
        x_test=shift(client.x_test),
        y_test=client.y_test,
    )


def unassigned_note(unassigned: int, pool: int, unused: list[int], kind: str) -> str:
    """The line that says a split left training samples (and classes) to no client.

    Parameters
    ----------
    unassigned : int
        Pool samples no client received.
    pool : int
        Size of the training pool.
    unused : list[int]
        Classes no client received at all.
    kind : str
        ``data.partition.kind``, for the message.
    """
    names = ", ".join(map(str, unused))
    classes = f" (every sample of class{'es' if len(unused) > 1 else ''} {names})" if unused else ""
    return (
        f"data.partition ({kind}): {unassigned} of {pool} training samples{classes} go to no client"
    )
