"""Runs the scenario's ``defense`` between reply screening and the server strategy.

The defence combines the accepted replies into one update; the strategy (FedAvg,
FedAdam, ...) then receives a single reply carrying ``global + combined update`` with
the round's total example count, so ``strategy.name`` applies after ``defense.name``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from torch import nn

from fedrobust.data import Federation
from fedrobust.robust.defenses import Defense, Updates, create_defense
from fedrobust.robust.defenses.fltrust import root_set, root_update
from fedrobust.robust.updates import apply_delta, flat_delta
from fedrobust.scenario import Scenario
from fedrobust.train import round_lr


def defend(
    defense: Defense,
    replies: list[Message],
    global_arrays: ArrayRecord,
    partition_of: dict[int, int],
    reference: np.ndarray | None = None,
) -> tuple[Message | None, dict[str, Any]]:
    """Combine ``replies``; return the one reply for the strategy (``None``: no aggregate)
    and the figures for metrics.json (flagged clients and the rule's own figures)."""
    ids = [partition_of[m.metadata.src_node_id] for m in replies]
    weights = np.array([float(_metrics(m)["num-examples"]) for m in replies])  # type: ignore[arg-type]
    deltas = np.stack(
        [flat_delta(m.content.array_records["arrays"], global_arrays) for m in replies]
    )
    combined = defense.combine(Updates(ids, deltas, weights, reference))
    figures: dict[str, Any] = {"flagged": sorted(combined.flagged), **combined.detail}
    if combined.delta is None:
        return None, figures
    reply = copy.copy(replies[0])
    reply.content = RecordDict(
        {
            "arrays": apply_delta(global_arrays, combined.delta),
            "metrics": MetricRecord({"num-examples": float(weights.sum())}),
        }
    )
    return reply, figures


def detection(flagged: list[int], malicious: list[int]) -> dict[str, float | None]:
    """Precision and recall of the flagged set against the true attackers of the round."""
    hits = len(set(flagged) & set(malicious))
    return {
        "precision": hits / len(flagged) if flagged else None,
        "recall": hits / len(malicious) if malicious else None,
    }


def _metrics(msg: Message) -> MetricRecord:
    return msg.content.metric_records["metrics"]


class ServerDefense:
    """The scenario's defence with what it needs from the server (FLTrust's root set).

    Parameters
    ----------
    scenario : Scenario
        ``defense`` names the rule (not fedavg: FedAvg is the strategy's own mean).
    fed : Federation
        The federation (FLTrust draws its root set from it).
    """

    def __init__(self, scenario: Scenario, fed: Federation) -> None:
        self.scenario = scenario
        self.rule = create_defense(scenario.defense, scenario.defense_num_malicious())
        self.num_classes = fed.spec.num_classes
        self.root = (
            root_set(fed, scenario.defense.root_samples, scenario.seed)
            if self.rule.needs_reference
            else None
        )

    def apply(
        self,
        rnd: int,
        replies: list[Message],
        global_arrays: ArrayRecord,
        partition_of: dict[int, int],
        model: nn.Module,
    ) -> tuple[list[Message], dict[str, Any]]:
        """The replies the strategy aggregates (one, or none) and the round's figures."""
        reference = None
        if self.root is not None:
            train = self.scenario.train
            reference = root_update(
                model, self.root, train,
                epochs=self.scenario.defense.root_epochs,
                num_classes=self.num_classes,
                lr=round_lr(train.lr_schedule, train.optimizer.lr, rnd, train.rounds),
                seed=self.scenario.seed * 1_000_003 + rnd * 10_007 - 1,
            )  # fmt: skip
        reply, figures = defend(self.rule, replies, global_arrays, partition_of, reference)
        figures = {"name": self.scenario.defense.name, **figures}
        if reply is None:
            figures.setdefault("error", "the rule produced no aggregate")
        return ([] if reply is None else [reply]), figures
