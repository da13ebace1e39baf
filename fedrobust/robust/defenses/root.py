"""The server's clean root set and what the root-set defences compute on it.

FLTrust (``fltrust.py``) trains the global model on the root set to get its own update;
Zeno (``zeno.py``) measures the root-set loss of the global model moved by each update.
The root set is drawn (seeded) from the clients' held-out validation splits, which no
client trains on.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
from flwr.app import ArrayRecord
from torch import nn

from fedrobust.data import Federation
from fedrobust.robust.updates import apply_delta, flat_delta
from fedrobust.seeds import Stream, stream
from fedrobust.train import evaluate, local_train
from fedrobust.train.config import TrainConfig


def root_set(fed: Federation, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``size`` examples drawn (seeded) from the union of the clients' validation splits."""
    x = np.concatenate([c.x_val for c in fed.clients])
    y = np.concatenate([c.y_val for c in fed.clients])
    if len(y) == 0:
        raise ValueError("defense.root_samples: the clients hold no validation data to draw from")
    rng = stream(seed, Stream.FLTRUST_ROOT)
    chosen = rng.choice(len(y), size=min(size, len(y)), replace=False)
    return x[chosen], y[chosen]


def root_update(
    model: nn.Module,
    root: tuple[np.ndarray, np.ndarray],
    train: TrainConfig,
    *,
    epochs: int,
    num_classes: int,
    lr: float,
    seed: int,
) -> np.ndarray:
    """The server's own update ``g0``: the global model trained on the root set with the
    scenario's recipe for ``epochs`` epochs, minus the global weights."""
    trained = copy.deepcopy(model)
    before = ArrayRecord(model.state_dict())
    recipe = train.model_copy(update={"local_epochs": epochs})
    local_train(trained, root[0], root[1], train=recipe, num_classes=num_classes, seed=seed, lr=lr)
    return flat_delta(ArrayRecord(trained.state_dict()), before)


def root_probe(
    model: nn.Module,
    global_arrays: ArrayRecord,
    root: tuple[np.ndarray, np.ndarray],
    num_classes: int,
) -> Callable[[np.ndarray], float]:
    """``probe(delta)``: the mean cross-entropy on the root set of the global model moved
    by the flat update ``delta`` (on a copy of ``model``; the global model is untouched)."""
    moved = copy.deepcopy(model)

    def probe(delta: np.ndarray) -> float:
        moved.load_state_dict(apply_delta(global_arrays, delta).to_torch_state_dict())
        return evaluate(moved, root[0], root[1], num_classes).loss

    return probe
