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
    """

    ids: list[int]
    deltas: np.ndarray
    weights: np.ndarray
    reference: np.ndarray | None = None


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


class Defense(ABC):
    """Combines client updates; ``needs_reference`` asks the server for its root update.

    Parameters
    ----------
    cfg : DefenseOptions
        The scenario's ``defense`` section.
    num_malicious : int
        Attackers the rule assumes (``Scenario.defense_num_malicious()``).
    """

    #: The ``defense`` fields the rule reads (others are refused for it).
    options: frozenset[str] = frozenset()
    needs_reference: bool = False
    #: Whether the rule keeps or drops whole clients (so flagged vs true attackers has a
    #: precision and recall); coordinate-wise rules mix every client into every value and
    #: clipping rules (norm_bound, centered_clip) keep every client, scaled: they flag
    #: none and report ``clipped_share`` instead.
    selects_clients: bool = True

    def __init__(self, cfg: DefenseOptions, num_malicious: int = 0) -> None:
        self.cfg = cfg
        self.num_malicious = num_malicious

    @abstractmethod
    def combine(self, updates: Updates) -> Combined:
        """Combine one round's updates."""

    def state_dict(self) -> dict[str, Any]:
        """Cross-round state (checkpointed); stateless rules have none."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore what :meth:`state_dict` returned."""


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


def create_defense(cfg: DefenseOptions, num_malicious: int = 0) -> Defense:
    """The defence ``cfg.name`` names; an unknown name lists the known ones."""
    return DEFENSES.get(cfg.name)(cfg, num_malicious)
