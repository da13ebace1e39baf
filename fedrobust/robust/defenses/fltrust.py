"""FLTrust (Cao et al. 2021, https://arxiv.org/abs/2012.13995).

The server trains the global model on a small clean root set to get its own update
``g0``. Each client's trust score is ``relu(cos(g_i, g0))``; updates are rescaled to
``||g0||`` and averaged weighted by trust. Clients with trust 0 are flagged.
"""

from __future__ import annotations

import copy

import numpy as np
from flwr.app import ArrayRecord
from torch import nn

from fedrobust.data import Federation
from fedrobust.robust.defenses.base import Combined, Defense, Updates, register_defense
from fedrobust.robust.updates import flat_delta
from fedrobust.seeds import Stream, stream
from fedrobust.train import local_train
from fedrobust.train.config import TrainConfig


@register_defense("fltrust")
class FLTrust(Defense):
    """Trust-weighted, norm-matched average against the server's root update."""

    options = frozenset({"root_samples", "root_epochs"})

    needs_reference = True
    bucketable = False  # it scores each client against the root update

    def combine(self, updates: Updates) -> Combined:
        if updates.reference is None:
            raise ValueError("fltrust needs the server's root update")
        g0 = updates.reference
        g0_norm = float(np.linalg.norm(g0))
        norms = np.maximum(np.linalg.norm(updates.deltas, axis=1), 1e-12)
        cosine = updates.deltas @ g0 / (norms * max(g0_norm, 1e-12))
        trust = np.maximum(cosine, 0.0)
        flagged = [pid for pid, t in zip(updates.ids, trust, strict=True) if t == 0]
        scores = zip(updates.ids, trust, strict=True)
        detail = {"trust": {str(p): round(float(t), 4) for p, t in scores}}
        if trust.sum() == 0:
            return Combined(np.zeros_like(g0), flagged, detail)
        rescaled = updates.deltas * (g0_norm / norms)[:, None]
        delta = (trust[:, None] * rescaled).sum(axis=0) / trust.sum()
        return Combined(delta, flagged, detail)


def root_set(fed: Federation, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The server's clean root set: ``size`` examples drawn (seeded) from the union of the
    clients' held-out validation splits, which no client trains on."""
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
