"""Build the Flower message-API strategy named in the scenario, from a name -> builder registry.

Sampling is done by our round loop (seeded, by partition id), so every strategy is
built to use all the nodes it is shown (``fraction_train=1.0``, minimum 1).
Flower's own federated evaluation is off: the server evaluates centrally.

Each builder is registered with the :class:`~fedrobust.strategy.config.StrategyConfig`
fields it reads; ``strategy.name`` is validated against this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from flwr.serverapp.strategy import FedAdam, FedAvg, FedAvgM, FedProx, FedYogi, Strategy

from fedrobust.registry import Registry

if TYPE_CHECKING:
    from fedrobust.scenario import Scenario
    from fedrobust.strategy.config import StrategyConfig

#: ``builder(cfg, common)``: the strategy for ``cfg``, given the options every strategy shares.
StrategyBuilder = Callable[["StrategyConfig", dict[str, Any]], Strategy]


@dataclass(frozen=True)
class StrategyEntry:
    """A registered strategy: its builder and the ``strategy`` fields it reads."""

    build: StrategyBuilder
    options: frozenset[str]


STRATEGIES: Registry[StrategyEntry] = Registry("strategy", "strategy.name")


def register_strategy(name: str, options: set[str]) -> Callable[[StrategyBuilder], StrategyBuilder]:
    """Register ``builder(cfg, common) -> Strategy`` as ``name``, reading ``options``."""

    def decorator(builder: StrategyBuilder) -> StrategyBuilder:
        STRATEGIES.register(name)(StrategyEntry(builder, frozenset(options)))
        return builder

    return decorator


def known_strategies() -> list[str]:
    """Registered strategy names, sorted."""
    return STRATEGIES.names()


def strategy_options(name: str) -> set[str]:
    """The ``strategy`` fields the strategy registered as ``name`` reads."""
    return set(STRATEGIES.get(name).options)


@register_strategy("fedavg", set())
def _fedavg(cfg: StrategyConfig, common: dict[str, Any]) -> Strategy:
    return FedAvg(**common)


@register_strategy("fedprox", {"proximal_mu"})
def _fedprox(cfg: StrategyConfig, common: dict[str, Any]) -> Strategy:
    return FedProx(**common, proximal_mu=cfg.proximal_mu)


def _adaptive_options(cfg: StrategyConfig) -> dict[str, Any]:
    options: dict[str, Any] = {"beta_1": cfg.beta_1, "beta_2": cfg.beta_2, "tau": cfg.tau}
    if cfg.server_lr is not None:
        options["eta"] = cfg.server_lr
    return options


@register_strategy("fedadam", {"server_lr", "beta_1", "beta_2", "tau"})
def _fedadam(cfg: StrategyConfig, common: dict[str, Any]) -> Strategy:
    return FedAdam(**common, **_adaptive_options(cfg))


@register_strategy("fedyogi", {"server_lr", "beta_1", "beta_2", "tau"})
def _fedyogi(cfg: StrategyConfig, common: dict[str, Any]) -> Strategy:
    return FedYogi(**common, **_adaptive_options(cfg))


@register_strategy("fedavgm", {"server_lr", "server_momentum"})
def _fedavgm(cfg: StrategyConfig, common: dict[str, Any]) -> Strategy:
    return FedAvgM(
        **common,
        server_learning_rate=cfg.server_lr if cfg.server_lr is not None else 1.0,
        server_momentum=cfg.server_momentum,
    )


def build_strategy(scenario: Scenario) -> Strategy:
    """The scenario's server strategy, wrapped for user-level DP when it asks for it."""
    # Here, not at the top: StrategyConfig's validator imports this module while
    # fedrobust.scenario is still loading, and client_dp imports fedrobust.scenario.
    from fedrobust.privacy.client_dp import UNIFORM_WEIGHT, wrap_client_dp

    if scenario.privacy.dp.mode != "client":
        return base_strategy(scenario.strategy)
    # DP-FedAvg's noise assumes an unweighted average: clients report weight 1
    inner = base_strategy(scenario.strategy, weighted_by_key=UNIFORM_WEIGHT)
    return wrap_client_dp(inner, scenario)


def base_strategy(cfg: StrategyConfig, weighted_by_key: str = "num-examples") -> Strategy:
    """The registered strategy ``cfg.name`` (fedavg | fedprox | fedadam | fedyogi | fedavgm).

    Raises
    ------
    FedrobustError
        ``strategy.name`` for a name nobody registered.
    """
    common: dict[str, Any] = {
        "weighted_by_key": weighted_by_key,
        "fraction_train": 1.0,
        "fraction_evaluate": 0.0,
        "min_train_nodes": 1,
        "min_evaluate_nodes": 0,
        "min_available_nodes": 1,
    }
    return STRATEGIES.get(cfg.name).build(cfg, common)


def strategy_state(strategy: Strategy) -> dict[str, Any]:
    """The state a strategy carries from round to round, as tensors (checkpointable).

    FedAdam/FedYogi keep moments ``m_t`` and ``v_t``; FedAvgM keeps ``momentum_vector``.
    FedAvg and FedProx keep nothing; adaptive DP clipping keeps its clipping norm.
    ``current_arrays`` is not saved: each strategy resets it from the global model in
    ``configure_train``.
    """
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
    if "clipping_norm" in state:
        strategy.clipping_norm = float(state["clipping_norm"])  # type: ignore[attr-defined]
    for name in ("m_t", "v_t"):
        if name in state:
            setattr(strategy, name, {k: v.numpy() for k, v in state[name].items()})
    if "momentum_vector" in state:
        strategy.momentum_vector = [v.numpy() for v in state["momentum_vector"]]  # type: ignore[attr-defined]
