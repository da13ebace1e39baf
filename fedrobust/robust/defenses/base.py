"""The defence contract: combine a round's client updates into one.

A defence sees flat update vectors (client weights minus global weights), one row per
client, and returns one combined update and the clients it rejected or down-weighted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from fedrobust.registry import Registry
from fedrobust.seeds import Stream, secret_rng, stream


@dataclass(frozen=True)
class Updates:
    """One round's client updates.

    Parameters
    ----------
    ids : list[int]
        Partition id of each row.
    deltas : np.ndarray
        ``(n, d)`` updates, float64.
    weights : np.ndarray
        ``(n,)`` the clients' reported example counts.
    reference : np.ndarray or None
        The server's own update on its root set (only for defences that ask for one).
    probe : callable or None
        ``probe(delta)``: the mean loss, on the server's root set, of the global model
        moved by the flat update ``delta`` (only for defences that ask for it).
    """

    ids: list[int]
    deltas: np.ndarray
    weights: np.ndarray
    reference: np.ndarray | None = None
    probe: Callable[[np.ndarray], float] | None = None


@dataclass(frozen=True)
class Combined:
    """What a defence made of a round.

    Parameters
    ----------
    delta : np.ndarray or None
        The combined update (``None``: the rule could not combine; the global model stays).
    flagged : list[int]
        Partition ids the rule rejected or down-weighted (only rules that
        ``selects_clients``; clipping rules report ``clipped_share`` in ``detail``).
    detail : dict
        Rule-specific figures for metrics.json (scores, bound used, ...).
    """

    delta: np.ndarray | None
    flagged: list[int] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


class DefenseOptions(Protocol):
    """What the rules read of the ``defense`` section
    (:class:`fedrobust.robust.config.DefenseConfig`, which validates against this
    registry)."""

    name: str
    num_selected: int | None
    beta: float
    clip_norm: float | None
    tau: float | None
    iterations: int
    root_samples: int
    root_epochs: int | None
    bucketing: int | None
    reproducible: bool
    tau_schedule: str
    subsample: int
    filter_factor: float
    noise_lambda: float
    server_lr: float
    rho: float
    step: float | None


class Defense(ABC):
    """Combines client updates; ``needs_reference`` asks the server for its root update,
    ``needs_probe`` for the root-set loss of a moved model (:attr:`Updates.probe`).

    Parameters
    ----------
    cfg : DefenseOptions
        The scenario's ``defense`` section.
    num_malicious : int
        Attackers the rule assumes (``Scenario.defense_num_malicious()``).
    seed : int
        The scenario's seed; the rule's draws (:meth:`rng`) derive from it only under
        ``defense.reproducible``, otherwise they come from the secret source.
    """

    #: The ``defense`` fields the rule reads (others are refused for it).
    options: frozenset[str] = frozenset()
    needs_reference: bool = False
    needs_probe: bool = False
    #: Whether the rule keeps or drops whole clients (so flagged vs true attackers has a
    #: precision and recall); coordinate-wise rules mix every client into every value and
    #: clipping rules (norm_bound, centered_clip) keep every client, scaled: they flag
    #: none and report ``clipped_share`` instead.
    selects_clients: bool = True
    #: Whether ``defense.bucketing`` may average the updates before the rule sees them
    #: (not for a rule that scores individual clients against a reference, FLTrust).
    bucketable: bool = True
    #: Tells this object's draws from those of a rule it wraps (bucketing) under
    #: ``defense.reproducible``.
    draw_tag: int = 0

    def __init__(self, cfg: DefenseOptions, num_malicious: int = 0, seed: int = 0) -> None:
        self.cfg = cfg
        self.num_malicious = num_malicious
        self.seed = seed
        self.draws = 0

    def rng(self) -> np.random.Generator:
        """A fresh generator for one of the rule's draws: the secret source, or under
        ``defense.reproducible`` the ``DEFENSE`` stream of the seed and a draw counter
        (checkpointed by :meth:`state_dict`, so a resumed run draws the same)."""
        self.draws += 1
        if self.cfg.reproducible:
            return stream(self.seed, Stream.DEFENSE, self.draw_tag, self.draws)
        return secret_rng()

    @abstractmethod
    def combine(self, updates: Updates) -> Combined:
        """Combine one round's updates."""

    def state_dict(self) -> dict[str, Any]:
        """Cross-round state (checkpointed): the draw counter, and what a subclass adds."""
        return {"draws": self.draws} if self.draws else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.draws = int(state.get("draws", 0))


def weighted_mean(deltas: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """FedAvg of rows, weighted by example counts."""
    return (weights[:, None] * deltas).sum(axis=0) / weights.sum()


def clipped_share(factors: np.ndarray) -> float:
    """Share of updates a clipping rule scaled down (a factor below 1)."""
    return float(np.mean(factors < 1.0)) if len(factors) else 0.0


DEFENSES: Registry[type[Defense]] = Registry("defense", "defense.name")


def register_defense(name: str) -> Callable[[type[Defense]], type[Defense]]:
    """Register a :class:`Defense` subclass under ``name`` (``defense.name``)."""
    return DEFENSES.register(name)
