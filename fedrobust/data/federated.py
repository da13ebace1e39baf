"""Build the federation's data: a global test set and one partition per client.

Steps, in order, each seeded from the scenario seed so server and clients build
the same split independently:

1. load the source; 2. hold out a stratified global test set (``test_fraction``);
3. split the rest with the flwr-datasets partitioner; 4. per client: split off
validation (``val_fraction``), then limited data, long-tail imbalance and label noise
on the training part only.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import train_test_split

from fedrobust.data.config import DataConfig
from fedrobust.data.partition import partition_indices
from fedrobust.data.sources import Source, load_source
from fedrobust.data.transforms import apply_imbalance, apply_label_noise, apply_limited
from fedrobust.errors import FedrobustError
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
    """

    x_train: np.ndarray
    y_train: np.ndarray
    y_train_clean: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

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
    clients: list[ClientData] = field(default_factory=list)
    unassigned: int = 0
    unused_classes: list[int] = field(default_factory=list)

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
    source = load_source(cfg.dataset, cfg.image_key, cfg.label_key)
    return _split(source, cfg, seed)


def _split(source: Source, cfg: DataConfig, seed: int) -> Federation:
    k = source.num_classes
    pool, test = _held_out_split(source.y, cfg.test_fraction, seed)
    parts = partition_indices(source.y[pool], cfg.partition, seed)
    tail_order = stream(seed, Stream.LONG_TAIL).permutation(k)
    clients = []
    for cid, part in enumerate(parts):
        rng = stream(seed, Stream.PARTITION, cid)
        rows = pool[rng.permutation(part)]
        n_val = int(len(rows) * cfg.val_fraction) if len(rows) > 1 else 0
        val, train = rows[:n_val], np.sort(rows[n_val:])
        if cfg.limited is not None:
            train = apply_limited(train, cfg.limited, rng)
        if cfg.imbalance is not None:
            train = apply_imbalance(train, source.y, cfg.imbalance, k, tail_order, rng)
        clean = source.y[train]
        noisy = (
            clean if cfg.label_noise is None else apply_label_noise(clean, cfg.label_noise, k, rng)
        )
        clients.append(
            ClientData(
                x_train=source.x[train],
                y_train=noisy,
                y_train_clean=clean,
                x_val=source.x[val],
                y_val=source.y[val],
            )
        )
    unassigned = len(pool) - sum(len(p) for p in parts)
    given = np.concatenate(parts) if parts else np.array([], dtype=np.int64)
    unused = sorted(set(source.y[pool].tolist()) - set(source.y[pool][given].tolist()))
    if unassigned:
        log.warning(unassigned_note(unassigned, len(pool), unused, cfg.partition.kind))
    return Federation(
        spec=InputSpec(shape=tuple(source.x.shape[1:]), num_classes=k),
        classes=source.classes,
        x_test=source.x[test],
        y_test=source.y[test],
        clients=clients,
        unassigned=unassigned,
        unused_classes=[int(c) for c in unused],
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
