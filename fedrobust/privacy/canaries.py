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

import numpy as np

from fedrobust.data import Federation, build_federation
from fedrobust.scenario import Scenario


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
    rng = np.random.default_rng([scenario.seed, 7, 1])
    m = cfg.canaries
    x = rng.random((m, *fed.spec.shape), dtype=np.float32)
    y = rng.integers(0, fed.spec.num_classes, m)
    client = np.arange(m) % len(fed.clients)
    included = rng.random(m) < 0.5
    return Canaries(x=x, y=y, client=client, included=included)


def scenario_federation(scenario: Scenario) -> Federation:
    """The federation a run trains on: the scenario's data, plus canaries when audited."""
    if scenario.privacy.audit is None:
        return build_federation(scenario.data, scenario.seed)
    return _with_canaries(scenario.model_dump_json())


@functools.lru_cache(maxsize=2)
def _with_canaries(scenario_json: str) -> Federation:
    scenario = Scenario.model_validate_json(scenario_json)
    fed = build_federation(scenario.data, scenario.seed)
    canaries = make_canaries(scenario, fed)
    clients = []
    for i, data in enumerate(fed.clients):
        mine = (canaries.client == i) & canaries.included
        clients.append(
            replace(
                data,
                x_train=np.concatenate([data.x_train, canaries.x[mine]]),
                y_train=np.concatenate([data.y_train, canaries.y[mine]]),
                y_train_clean=np.concatenate([data.y_train_clean, canaries.y[mine]]),
            )
        )
    return replace(fed, clients=clients)
