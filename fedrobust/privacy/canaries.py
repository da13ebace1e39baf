"""Canaries for the one-run privacy audit, and the federation that carries them.

Each canary is a random image (uniform pixels in [0, 1]) with a random label: an
example no real data resembles, so a model that fits it must have memorised it. Canary
``i`` belongs to client ``i mod num_clients`` and is put into that client's training
set with probability 1/2 (the membership bit the audit guesses). Everything derives
from the scenario seed, so the server, every client and ``fedrobust audit`` agree on
the canaries without exchanging them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedrobust.data import ClientData, Federation, build_federation
from fedrobust.privacy.audit import audit_from_scores
from fedrobust.scenario import Scenario
from fedrobust.seeds import Stream, stream


@dataclass(frozen=True)
class Canaries:
    """The audit's canaries.

    Parameters
    ----------
    x, y : np.ndarray
        Inputs and labels.
    client : np.ndarray
        The client each canary belongs to.
    included : np.ndarray
        Whether each canary is in its client's training set.
    """

    x: np.ndarray
    y: np.ndarray
    client: np.ndarray
    included: np.ndarray


def make_canaries(scenario: Scenario, fed: Federation) -> Canaries:
    """The scenario's canaries (``privacy.audit``), for data shaped like ``fed``."""
    cfg = scenario.privacy.audit
    if cfg is None:
        raise ValueError("the scenario has no privacy.audit section")
    rng = stream(scenario.seed, Stream.CANARIES, 1)
    m = cfg.canaries
    x = rng.random((m, *fed.spec.shape), dtype=np.float32)
    y = rng.integers(0, fed.spec.num_classes, m)
    client = np.arange(m) % len(fed.clients)
    included = rng.random(m) < 0.5
    return Canaries(x=x, y=y, client=client, included=included)


def scenario_federation(scenario: Scenario, store_dir: Path | None = None) -> Federation:
    """The federation a run trains on: the scenario's data, plus canaries when audited.

    Read from the federation store in ``store_dir`` (default: the run's, in a
    simulation's processes, :func:`fedrobust.data.store.run_store`) when that holds it,
    each client gathered on access; else built in memory.
    """
    from fedrobust.data.store import run_store

    store = run_store(scenario.data, scenario.seed, store_dir)
    if store is not None:
        fed = store.federation()
        if scenario.privacy.audit is None:
            return fed
        canaries = make_canaries(scenario, fed)
        return fed.with_finish(functools.partial(_plant, canaries))
    if scenario.privacy.audit is None:
        return build_federation(scenario.data, scenario.seed)
    return _with_canaries(scenario.model_dump_json())


@functools.lru_cache(maxsize=2)
def _with_canaries(scenario_json: str) -> Federation:
    scenario = Scenario.model_validate_json(scenario_json)
    fed = build_federation(scenario.data, scenario.seed)
    canaries = make_canaries(scenario, fed)
    return replace(fed, clients=[_plant(canaries, i, data) for i, data in enumerate(fed.clients)])


def _plant(canaries: Canaries, client: int, data: ClientData) -> ClientData:
    """``data`` with the canaries of ``client`` that are included added to its training set."""
    mine = (canaries.client == client) & canaries.included
    return replace(
        data,
        x_train=np.concatenate([data.x_train, canaries.x[mine]]),
        y_train=np.concatenate([data.y_train, canaries.y[mine]]),
        y_train_clean=np.concatenate([data.y_train_clean, canaries.y[mine]]),
    )


@torch.no_grad()
def canary_scores(model: nn.Module, canaries: Canaries) -> np.ndarray:
    """Membership score of each canary: minus the model's loss on it (higher = seen)."""
    model.eval()
    logits = model(torch.from_numpy(canaries.x))
    loss = F.cross_entropy(logits, torch.from_numpy(canaries.y), reduction="none")
    return (-loss).numpy()


def audit_model(scenario: Scenario, model: nn.Module, claimed: float | None) -> dict[str, Any]:
    """Run the one-run audit on a trained global model; the figures for metrics.json.

    Parameters
    ----------
    scenario : Scenario
        The run's scenario (its ``privacy.audit`` section says how many canaries).
    model : nn.Module
        The final global model.
    claimed : float or None
        The epsilon the run reports (``None`` without DP: nothing is claimed).
    """
    cfg = scenario.privacy.audit
    if cfg is None:
        raise ValueError("the scenario has no privacy.audit section")
    canaries = make_canaries(scenario, scenario_federation(scenario))
    delta = scenario.privacy.dp.delta if scenario.privacy.dp.mode != "none" else 0.0
    result = audit_from_scores(canary_scores(model, canaries), canaries.included, delta,
                               cfg.confidence)  # fmt: skip
    return {
        "num_canaries": result.num_canaries,
        "num_guesses": result.num_guesses,
        "num_correct": result.num_correct,
        "epsilon_lower_bound": result.epsilon_lower_bound,
        "confidence": result.confidence,
        "delta": result.delta,
        "claimed_epsilon": claimed,
        "consistent": claimed is None or result.epsilon_lower_bound <= claimed,
    }
