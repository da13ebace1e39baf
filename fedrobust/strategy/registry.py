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
from typing import Any, Protocol

from flwr.serverapp.strategy import FedAdam, FedAvg, FedAvgM, FedProx, FedYogi, Strategy

from fedrobust.registry import Registry


class StrategyOptions(Protocol):
    """What a builder reads of the ``strategy`` section
    (:class:`fedrobust.strategy.config.StrategyConfig`, which validates against this
    registry)."""

    name: str
    proximal_mu: float
    server_lr: float | None
    beta_1: float
    beta_2: float
    tau: float
    server_momentum: float


#: ``builder(cfg, common)``: the strategy for ``cfg``, given the options every strategy shares.
StrategyBuilder = Callable[[StrategyOptions, dict[str, Any]], Strategy]


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
def _fedavg(cfg: StrategyOptions, common: dict[str, Any]) -> Strategy:
    return FedAvg(**common)


@register_strategy("fedprox", {"proximal_mu"})
def _fedprox(cfg: StrategyOptions, common: dict[str, Any]) -> Strategy:
    return FedProx(**common, proximal_mu=cfg.proximal_mu)


def _adaptive_options(cfg: StrategyOptions) -> dict[str, Any]:
    options: dict[str, Any] = {"beta_1": cfg.beta_1, "beta_2": cfg.beta_2, "tau": cfg.tau}
    if cfg.server_lr is not None:
        options["eta"] = cfg.server_lr
    return options


@register_strategy("fedadam", {"server_lr", "beta_1", "beta_2", "tau"})
def _fedadam(cfg: StrategyOptions, common: dict[str, Any]) -> Strategy:
    return FedAdam(**common, **_adaptive_options(cfg))


@register_strategy("fedyogi", {"server_lr", "beta_1", "beta_2", "tau"})
def _fedyogi(cfg: StrategyOptions, common: dict[str, Any]) -> Strategy:
    return FedYogi(**common, **_adaptive_options(cfg))


@register_strategy("fedavgm", {"server_lr", "server_momentum"})
def _fedavgm(cfg: StrategyOptions, common: dict[str, Any]) -> Strategy:
    return FedAvgM(
        **common,
        server_learning_rate=cfg.server_lr if cfg.server_lr is not None else 1.0,
        server_momentum=cfg.server_momentum,
    )


def base_strategy(cfg: StrategyOptions, weighted_by_key: str = "num-examples") -> Strategy:
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
