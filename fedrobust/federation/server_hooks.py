"""The server's seam: a feature changes the round loop through a :class:`ServerHook`.

Hooks are built once per run, after the clients are discovered
(:meth:`ServerHook.create` returns ``None`` when the scenario does not use the
feature), and called in registry order (:mod:`fedrobust.federation.registry`) at fixed
points of ``server/loop.py``; each takes values and returns values:

1. :meth:`~ServerHook.configure`: change the round's training messages (per-client
   settings such as DP's sigma);
2. :meth:`~ServerHook.transform`: change the screened replies before the strategy
   aggregates them (the colluding attacker, a robust defence), with figures;
3. :meth:`~ServerHook.aggregated`: change the strategy's aggregate before the model loads
   it and the next round sends it (continual learning's class-aware head and weight
   aligning);
4. :meth:`~ServerHook.observe`: figures of the round, after the new global model is
   evaluated (privacy spent, backdoor success, robust accuracy, continual rows);
5. :meth:`~ServerHook.should_stop`: end the run early;
6. :meth:`~ServerHook.finish`: the model the run keeps and the ``final`` figures.

A hook with state across rounds names itself in ``name``; the checkpoint holds one
entry per such hook (:meth:`~ServerHook.state_dict` / :meth:`~ServerHook.load_state_dict`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, Message
from torch import nn

from fedrobust.data import Federation
from fedrobust.scenario import Scenario


@dataclass(frozen=True)
class ServerSetup:
    """What a server hook is built from.

    Parameters
    ----------
    scenario : Scenario
        The validated scenario.
    fed : Federation
        The federation (test set, input spec; simulated partitions).
    sizes : dict[int, int]
        Training examples of each client, as the clients reported them at discovery.
    run_dir : Path or None
        The run directory, for hooks that write files of their own.
    """

    scenario: Scenario
    fed: Federation
    sizes: dict[int, int]
    run_dir: Path | None = None


@dataclass
class RoundOutcome:
    """What a transport (plain or SecAgg+) brought back from one round.

    Parameters
    ----------
    replies : list[Message]
        What the strategy aggregates: the sound replies in partition order (SecAgg+:
        one copy of the unmasked mean per contributor).
    contributors : list[Message]
        The training replies (with metrics) of the clients in the aggregate.
    trained : list[Message]
        The training replies of every client that trained (SecAgg+: also those that
        dropped out later), for the privacy ledger.
    dropped : Counter[str]
        Replies lost or refused, by reason (one vocabulary for every transport).
    refused : set[int]
        Node ids that declined the round (e.g. their privacy budget is spent).
    figures : dict
        The transport's own figures for metrics.json (``secure_aggregation``).
    """

    replies: list[Message] = field(default_factory=list)
    contributors: list[Message] = field(default_factory=list)
    trained: list[Message] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    refused: set[int] = field(default_factory=set)
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RoundView:
    """One finished round, as the observing hooks see it.

    Parameters
    ----------
    rnd : int
        The round.
    sampled : dict[int, int]
        Node id -> partition id of the clients asked to train.
    arrays : ArrayRecord
        The global weights the round started from.
    outcome : RoundOutcome
        What the transport brought back.
    aggregated : bool
        Whether the round produced a new global model.
    """

    rnd: int
    sampled: dict[int, int]
    arrays: ArrayRecord
    outcome: RoundOutcome
    aggregated: bool

    def partition(self, msg: Message) -> int:
        """The partition id of a reply's sender."""
        return self.sampled[msg.metadata.src_node_id]


class ServerHook:
    """Base of the server hooks: every method returns what it was given."""

    name: str = ""  # the checkpoint entry; empty for a hook without state

    @classmethod
    def create(cls, setup: ServerSetup) -> ServerHook | None:
        """The hook for ``setup.scenario``, or ``None`` when the scenario does not use it."""
        raise NotImplementedError

    def configure(
        self, rnd: int, messages: list[Message], sampled: dict[int, int]
    ) -> list[Message]:
        """Change the round's training messages (``sampled``: node id -> partition id)."""
        return messages

    def transform(
        self,
        rnd: int,
        replies: list[Message],
        arrays: ArrayRecord,
        sampled: dict[int, int],
        model: nn.Module,
    ) -> tuple[list[Message], dict[str, Any]]:
        """Change the screened replies; return them and figures for the round.

        ``arrays`` and ``model`` hold the global weights the round started from.
        """
        return replies, {}

    def aggregated(
        self,
        rnd: int,
        new_arrays: ArrayRecord | None,
        replies: list[Message],
        arrays: ArrayRecord,
    ) -> ArrayRecord | None:
        """Change the strategy's aggregate before the model loads it and the clients get it.

        ``new_arrays`` is ``None`` when the round aggregated nothing (the global weights
        stay). ``replies`` are those the strategy aggregated, as the :meth:`transform`
        hooks left them (with every record and metric the clients sent; SecAgg+: copies of
        the unmasked mean); ``arrays`` holds the global weights the round started from.
        """
        return new_arrays

    def observe(self, view: RoundView, figures: dict[str, Any], model: nn.Module) -> dict[str, Any]:
        """Figures to add to the round's (``model`` holds the new global weights)."""
        return {}

    def should_stop(self, rnd: int, figures: dict[str, Any], model: nn.Module) -> bool:
        """Whether the run ends after this round."""
        return False

    def finish(self, model: nn.Module, totals: dict[str, Any]) -> dict[str, Any]:
        """Figures for ``final`` (``totals``: those of the hooks before); a hook may load
        the weights the run keeps into ``model``."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Checkpointable state (tensors and plain values)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
