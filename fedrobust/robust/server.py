"""The server's poisoning hooks: the colluding attacker, the robust defence, and what
the run measures of the attack (who attacked, detection, backdoor success).

The colluding attacker (``attack.kind``: alie, ipm, minmax) is not a defence and not
part of aggregation: it stands in for attackers who share what the honest clients sent
this round, rewriting the malicious clients' replies before any defence sees them (the
malicious ClientApps trained honestly).

The defence combines the accepted replies into one update; the strategy (FedAvg,
FedAdam, ...) then receives a single reply carrying ``global + combined update`` with
the round's total example count, so ``strategy.name`` applies after ``defense.name``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord
from torch import nn

from fedrobust.federation.records import with_records
from fedrobust.federation.server_hooks import RoundView, ServerHook, ServerSetup
from fedrobust.robust.collusion import colluding_update
from fedrobust.robust.defenses import Defense, Updates, create_defense
from fedrobust.robust.defenses.root import root_probe, root_set, root_update
from fedrobust.robust.malicious import attacking, malicious_clients
from fedrobust.robust.poisoning import backdoor_success
from fedrobust.robust.updates import apply_delta, flat_delta
from fedrobust.scenario import COLLUDING_ATTACKS, Scenario
from fedrobust.seeds import client_seed
from fedrobust.train import round_lr


def _arrays(msg: Message) -> ArrayRecord:
    return msg.content.array_records["arrays"]


def collude(
    scenario: Scenario,
    rnd: int,
    replies: list[Message],
    global_arrays: ArrayRecord,
    partition_of: dict[int, int],
) -> list[Message]:
    """``replies`` with every attacking client's weights replaced by the colluding update.

    Nothing changes before ``attack.start_round``, for non-colluding attacks, or when
    fewer than two honest clients replied (the attack needs their spread).
    """
    if scenario.attack.kind not in COLLUDING_ATTACKS:
        return replies
    bad = [attacking(scenario, partition_of[m.metadata.src_node_id], rnd) for m in replies]
    good = [m for m, b in zip(replies, bad, strict=True) if not b]
    if not any(bad) or len(good) < 2:
        return replies
    benign = np.stack([flat_delta(_arrays(m), global_arrays) for m in good])
    delta = colluding_update(scenario.attack, benign, len(replies), sum(bad))
    forged = apply_delta(global_arrays, delta)
    return [with_records(m, arrays=forged) if b else m for m, b in zip(replies, bad, strict=True)]


def defend(
    defense: Defense,
    replies: list[Message],
    global_arrays: ArrayRecord,
    partition_of: dict[int, int],
    reference: np.ndarray | None = None,
    probe: Callable[[np.ndarray], float] | None = None,
) -> tuple[Message | None, dict[str, Any]]:
    """Combine ``replies``; return the one reply for the strategy (``None``: no aggregate)
    and the figures for metrics.json: the rule's own figures, and the flagged clients
    only for a rule that keeps or drops whole clients (``Defense.selects_clients``;
    clipping rules report ``clipped_share`` instead)."""
    ids = [partition_of[m.metadata.src_node_id] for m in replies]
    weights = np.array([float(_metrics(m)["num-examples"]) for m in replies])  # type: ignore[arg-type]
    deltas = np.stack([flat_delta(_arrays(m), global_arrays) for m in replies])
    combined = defense.combine(Updates(ids, deltas, weights, reference, probe))
    figures: dict[str, Any] = dict(combined.detail)
    if defense.selects_clients:
        figures = {"flagged": sorted(combined.flagged), **figures}
    if combined.delta is None:
        return None, figures
    reply = with_records(
        replies[0],
        arrays=apply_delta(global_arrays, combined.delta),
        metrics=MetricRecord({"num-examples": float(weights.sum())}),
    )
    return reply, figures


def root_epochs(scenario: Scenario) -> int:
    """FLTrust's root training epochs: ``defense.root_epochs``, by default the clients'
    ``train.local_epochs`` (the root update follows the clients' recipe, as in Cao et
    al. 2021, https://arxiv.org/abs/2012.13995)."""
    epochs = scenario.defense.root_epochs
    return scenario.train.local_epochs if epochs is None else epochs


def detection(flagged: list[int], malicious: list[int]) -> dict[str, float | None]:
    """Precision and recall of the flagged set against the true attackers of the round."""
    hits = len(set(flagged) & set(malicious))
    return {
        "precision": hits / len(flagged) if flagged else None,
        "recall": hits / len(malicious) if malicious else None,
    }


def _metrics(msg: Message) -> MetricRecord:
    return msg.content.metric_records["metrics"]


class CollusionHook(ServerHook):
    """``attack.kind``: alie | ipm | minmax: the simulated colluding attacker."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario

    @classmethod
    def create(cls, setup: ServerSetup) -> CollusionHook | None:
        kind = setup.scenario.attack.kind
        return cls(setup.scenario) if kind in COLLUDING_ATTACKS else None

    def transform(
        self,
        rnd: int,
        replies: list[Message],
        arrays: ArrayRecord,
        sampled: dict[int, int],
        model: nn.Module,
    ) -> tuple[list[Message], dict[str, Any]]:
        return collude(self.scenario, rnd, replies, arrays, sampled), {}


class DefenseHook(ServerHook):
    """``defense.name`` (not fedavg: FedAvg is the strategy's own mean), with what it
    needs from the server (the root set of FLTrust and Zeno). Its state (e.g. centered
    clipping's centre) is checkpointed."""

    name = "defense"

    def __init__(self, setup: ServerSetup) -> None:
        scenario = self.scenario = setup.scenario
        self.rule = create_defense(
            scenario.defense, scenario.defense_num_malicious(), seed=scenario.seed
        )
        self.num_classes = setup.fed.spec.num_classes
        self.root = (
            root_set(setup.fed, scenario.defense.root_samples, scenario.seed)
            if self.rule.needs_reference or self.rule.needs_probe
            else None
        )

    @classmethod
    def create(cls, setup: ServerSetup) -> DefenseHook | None:
        return cls(setup) if setup.scenario.defense.name != "fedavg" else None

    def transform(
        self,
        rnd: int,
        replies: list[Message],
        arrays: ArrayRecord,
        sampled: dict[int, int],
        model: nn.Module,
    ) -> tuple[list[Message], dict[str, Any]]:
        if not replies:
            return replies, {}
        reference = probe = None
        if self.root is not None and self.rule.needs_probe:
            probe = root_probe(model, arrays, self.root, self.num_classes)
        if self.root is not None and self.rule.needs_reference:
            train = self.scenario.train
            reference = root_update(
                model, self.root, train,
                epochs=root_epochs(self.scenario),
                num_classes=self.num_classes,
                lr=round_lr(train.lr_schedule, train.optimizer.lr, rnd, train.rounds),
                seed=client_seed(self.scenario.seed, rnd, -1),
            )  # fmt: skip
        reply, figures = defend(self.rule, replies, arrays, sampled, reference, probe)
        figures = {"name": self.scenario.defense.name, **figures}
        if reply is None:
            figures.setdefault("error", "the rule produced no aggregate")
        if self.scenario.attack.kind != "none" and self.rule.selects_clients:
            pids = [sampled[m.metadata.src_node_id] for m in replies]
            attackers = [p for p in pids if attacking(self.scenario, p, rnd)]
            figures.update(detection(figures["flagged"], sorted(attackers)))
        return ([] if reply is None else [reply]), {"defense": figures}

    def state_dict(self) -> dict[str, Any]:
        return self.rule.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rule.load_state_dict(state)  # type: ignore[arg-type]


class AttackMetricsHook(ServerHook):
    """What the run measures of an attack: the round's attackers, how well the defence
    flagged them, and the backdoor's success on the global model."""

    def __init__(self, setup: ServerSetup) -> None:
        self.scenario = setup.scenario
        self.fed = setup.fed
        self.bad = malicious_clients(setup.scenario)

    @classmethod
    def create(cls, setup: ServerSetup) -> AttackMetricsHook | None:
        return cls(setup) if setup.scenario.attack.kind != "none" else None

    def observe(self, view: RoundView, figures: dict[str, Any], model: nn.Module) -> dict[str, Any]:
        attack = self.scenario.attack
        participants = [view.partition(m) for m in view.outcome.contributors]
        attackers = (
            sorted(p for p in participants if p in self.bad)
            if view.rnd >= attack.start_round
            else []
        )
        out: dict[str, Any] = {"malicious": attackers}
        if attack.kind == "backdoor":
            out["backdoor_success"] = self._backdoor(model)
        return out

    def finish(self, model: nn.Module, totals: dict[str, Any]) -> dict[str, Any]:
        if self.scenario.attack.kind != "backdoor":
            return {}
        return {"backdoor_success": self._backdoor(model)}  # of the model the run keeps

    def _backdoor(self, model: nn.Module) -> float:
        return backdoor_success(model, self.scenario.attack, self.fed.x_test, self.fed.y_test)
