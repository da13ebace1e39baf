"""The run's strategy: the registered one, wrapped for client-level DP, and its state.

:mod:`fedrobust.strategy.registry` only names and builds Flower's strategies (the
scenario's ``strategy.name`` is validated against it); this module composes them with
the scenario's privacy and keeps their state across checkpoints.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
from flwr.serverapp.strategy import Strategy

from fedrobust.privacy.client_dp import UNIFORM_WEIGHT, wrap_client_dp
from fedrobust.sampling import round_clients
from fedrobust.scenario import Scenario
from fedrobust.strategy.registry import Population, base_strategy


def population(scenario: Scenario) -> Population:
    """The run's clients as a strategy with per-client state sees them: their number, and
    each round's partitions in the order the round loop addresses them (sorted, from
    :func:`fedrobust.sampling.round_clients`; client-level DP, whose sample is secret,
    is refused for those strategies)."""
    return Population(scenario.data.partition.num_clients, partial(round_clients, scenario))


def build_strategy(scenario: Scenario) -> Strategy:
    """The scenario's server strategy, wrapped for user-level DP when it asks for it."""
    if scenario.privacy.dp.mode != "client":
        return base_strategy(scenario.strategy, population=population(scenario))
    # DP-FedAvg's noise assumes an unweighted average: clients report weight 1
    inner = base_strategy(scenario.strategy, weighted_by_key=UNIFORM_WEIGHT)
    return wrap_client_dp(inner, scenario)


def strategy_state(strategy: Strategy) -> dict[str, Any]:
    """The state a strategy carries from round to round, as tensors (checkpointable).

    FedAdam/FedYogi keep moments ``m_t`` and ``v_t``; FedAvgM keeps ``momentum_vector``.
    FedAvg and FedProx keep nothing; adaptive DP clipping keeps its clipping norm. A
    strategy with a ``state_dict()`` of its own (SCAFFOLD's control variates, FedDyn's
    ``h`` and ``h_k``: tensors and plain values) is saved with it.
    ``current_arrays`` is not saved: each strategy resets it from the global model in
    ``configure_train``.
    """
    own = getattr(strategy, "state_dict", None)
    if callable(own):
        return {"own": own()}
    state: dict[str, Any] = {}
    if hasattr(strategy, "target_clipped_quantile"):  # adaptive clipping wrappers
        state["clipping_norm"] = float(strategy.clipping_norm)  # type: ignore[attr-defined]
    for name in ("m_t", "v_t"):
        value = getattr(strategy, name, None)
        if value is not None:
            state[name] = {k: torch.from_numpy(np.array(v)) for k, v in value.items()}
    momentum = getattr(strategy, "momentum_vector", None)
    if momentum is not None:
        state["momentum_vector"] = [torch.from_numpy(np.array(v)) for v in momentum]
    return state


def load_strategy_state(strategy: Strategy, state: dict[str, Any]) -> None:
    """Restore what :func:`strategy_state` saved into a freshly built strategy."""
    if "own" in state:
        strategy.load_state_dict(state["own"])  # type: ignore[attr-defined]
        return
    if "clipping_norm" in state:
        strategy.clipping_norm = float(state["clipping_norm"])  # type: ignore[attr-defined]
    for name in ("m_t", "v_t"):
        if name in state:
            setattr(strategy, name, {k: v.numpy() for k, v in state[name].items()})
    if "momentum_vector" in state:
        strategy.momentum_vector = [v.numpy() for v in state["momentum_vector"]]  # type: ignore[attr-defined]
