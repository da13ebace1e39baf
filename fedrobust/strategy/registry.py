"""Build the Flower message-API strategy named in the scenario, from a name -> builder registry.

Sampling is done by our round loop (seeded, by partition id), so every strategy is
built to use all the nodes it is shown (``fraction_train=1.0``, minimum 1).
Flower's own federated evaluation is off: the server evaluates centrally.

Each builder is registered with the :class:`~fedrobust.strategy.config.StrategyConfig`
fields it reads and the :class:`~fedrobust.federation.screening.ReplyContract` of what it
reads of a reply beyond the weights (screened by the transport); ``strategy.name`` is
validated against this registry. The client-drift strategies (SCAFFOLD, FedDyn,
FedNova: :mod:`fedrobust.strategy.scaffold`, ``feddyn``, ``fednova``) also need the run's
:class:`Population`: how many clients there are and which partitions a round samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from flwr.serverapp.strategy import FedAdam, FedAvg, FedAvgM, FedProx, FedYogi, Strategy

from fedrobust.federation.screening import ReplyContract
from fedrobust.registry import Registry
from fedrobust.strategy.feddyn import FedDyn
from fedrobust.strategy.fednova import FedNova
from fedrobust.strategy.scaffold import Scaffold


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
    alpha: float


def _no_sample(rnd: int) -> list[int]:
    """The default :attr:`Population.sampled`: a strategy built without the run's clients."""
    raise ValueError("this strategy needs the run's Population (build_strategy passes it)")


@dataclass(frozen=True)
class Population:
    """The run's clients, as a strategy with per-client state needs them.

    Parameters
    ----------
    num_clients : int
        ``data.partition.num_clients`` (SCAFFOLD's N, FedDyn's m).
    sampled : callable
        ``sampled(rnd)``: the partition ids the loop samples in round ``rnd``, in the
        order it addresses them (:func:`fedrobust.sampling.round_clients`).
    """

    num_clients: int = 0
    sampled: Callable[[int], list[int]] = field(default=_no_sample)


#: ``builder(cfg, common, population)``: the strategy for ``cfg``, given the options every
#: strategy shares and the run's clients.
StrategyBuilder = Callable[[StrategyOptions, dict[str, Any], Population], Strategy]


@dataclass(frozen=True)
class StrategyEntry:
    """A registered strategy: its builder, the ``strategy`` fields it reads and what it
    reads of a reply beyond ``arrays`` and the weights."""

    build: StrategyBuilder
    options: frozenset[str]
    reads: type | None = None


STRATEGIES: Registry[StrategyEntry] = Registry("strategy", "strategy.name")


def register_strategy(
    name: str, options: set[str], reads: type | None = None
) -> Callable[[StrategyBuilder], StrategyBuilder]:
    """Register ``builder(cfg, common, population) -> Strategy`` as ``name``, reading
    ``options``; ``reads``: the strategy class whose ``reply_records`` /
    ``reply_metrics`` every reply must carry (screened before aggregation)."""

    def decorator(builder: StrategyBuilder) -> StrategyBuilder:
        STRATEGIES.register(name)(StrategyEntry(builder, frozenset(options), reads))
        return builder

    return decorator


def known_strategies() -> list[str]:
    """Registered strategy names, sorted."""
    return STRATEGIES.names()


def strategy_options(name: str) -> set[str]:
    """The ``strategy`` fields the strategy registered as ``name`` reads."""
    return set(STRATEGIES.get(name).options)


def reply_contract(name: str) -> ReplyContract:
    """What the strategy registered as ``name`` reads of every training reply."""
    cls = STRATEGIES.get(name).reads
    if cls is None:
        return ReplyContract()
    return ReplyContract(
        records=tuple(getattr(cls, "reply_records", ())),
        metrics=tuple(getattr(cls, "reply_metrics", ())),
    )


@register_strategy("fedavg", set())
def _fedavg(cfg: StrategyOptions, common: dict[str, Any], population: Population) -> Strategy:
    return FedAvg(**common)


@register_strategy("fedprox", {"proximal_mu"})
def _fedprox(cfg: StrategyOptions, common: dict[str, Any], population: Population) -> Strategy:
    return FedProx(**common, proximal_mu=cfg.proximal_mu)


def _adaptive_options(cfg: StrategyOptions) -> dict[str, Any]:
    options: dict[str, Any] = {"beta_1": cfg.beta_1, "beta_2": cfg.beta_2, "tau": cfg.tau}
    if cfg.server_lr is not None:
        options["eta"] = cfg.server_lr
    return options


@register_strategy("fedadam", {"server_lr", "beta_1", "beta_2", "tau"})
def _fedadam(cfg: StrategyOptions, common: dict[str, Any], population: Population) -> Strategy:
    return FedAdam(**common, **_adaptive_options(cfg))


@register_strategy("fedyogi", {"server_lr", "beta_1", "beta_2", "tau"})
def _fedyogi(cfg: StrategyOptions, common: dict[str, Any], population: Population) -> Strategy:
    return FedYogi(**common, **_adaptive_options(cfg))


@register_strategy("fedavgm", {"server_lr", "server_momentum"})
def _fedavgm(cfg: StrategyOptions, common: dict[str, Any], population: Population) -> Strategy:
    return FedAvgM(
        **common,
        server_learning_rate=cfg.server_lr if cfg.server_lr is not None else 1.0,
        server_momentum=cfg.server_momentum,
    )


@register_strategy("scaffold", {"server_lr"}, reads=Scaffold)
def _scaffold(cfg: StrategyOptions, common: dict[str, Any], population: Population) -> Strategy:
    server_lr = cfg.server_lr if cfg.server_lr is not None else 1.0
    return Scaffold(population.num_clients, population.sampled, server_lr=server_lr, **common)


@register_strategy("feddyn", {"alpha"}, reads=FedDyn)
def _feddyn(cfg: StrategyOptions, common: dict[str, Any], population: Population) -> Strategy:
    return FedDyn(population.num_clients, population.sampled, alpha=cfg.alpha, **common)


@register_strategy("fednova", set(), reads=FedNova)
def _fednova(cfg: StrategyOptions, common: dict[str, Any], population: Population) -> Strategy:
    return FedNova(**common)


def base_strategy(
    cfg: StrategyOptions,
    weighted_by_key: str = "num-examples",
    population: Population | None = None,
) -> Strategy:
    """The registered strategy ``cfg.name`` (fedavg | fedprox | fedadam | fedyogi | fedavgm
    | scaffold | feddyn | fednova); ``population``: the run's clients (needed by scaffold
    and feddyn).

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
    return STRATEGIES.get(cfg.name).build(cfg, common, population or Population())
