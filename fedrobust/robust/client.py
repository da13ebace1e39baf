"""The malicious client's hook: data poisoning before training, update poisoning after.

Colluding attacks (ALIE, IPM, min-max) train honestly here; the server-side
:mod:`fedrobust.robust.server` stands in for their collusion.
"""

from __future__ import annotations

from dataclasses import replace

from flwr.app import ArrayRecord
from torch import nn

from fedrobust.federation.client_hooks import ClientHook, ClientJob, LocalPlan
from fedrobust.federation.records import Record
from fedrobust.robust.malformed import (
    MALFORMATIONS,
    malform_metrics,
    malform_records,
    malformation,
)
from fedrobust.robust.malicious import attacking
from fedrobust.robust.poisoning import poison_data, poison_update
from fedrobust.robust.updates import apply_delta, flat_delta
from fedrobust.scenario import Scenario
from fedrobust.train import TrainResult


class MaliciousHook(ClientHook):
    """``attack``: this client poisons its data (label_flip, backdoor) and its update
    (sign_flip, gaussian, scaling, backdoor's boost), or sends malformed replies
    (malformed), in the rounds it attacks."""

    @classmethod
    def create(cls, scenario: Scenario) -> MaliciousHook | None:
        return cls() if scenario.attack.kind != "none" else None

    def plan(self, job: ClientJob, model: nn.Module, plan: LocalPlan) -> LocalPlan:
        if not attacking(job.scenario, job.partition, job.rnd):
            return plan
        x, y = poison_data(job.scenario.attack, plan.x, plan.y, job.spec.num_classes, job.seed)
        return replace(plan, x=x, y=y)

    def metrics(
        self, job: ClientJob, result: TrainResult, metrics: dict[str, float | int]
    ) -> dict[str, float | int]:
        if job.scenario.attack.kind != "malformed" or not attacking(
            job.scenario, job.partition, job.rnd
        ):
            return metrics
        return malform_metrics(_malformation(job), metrics)

    def reply(
        self, job: ClientJob, records: dict[str, Record], global_arrays: ArrayRecord
    ) -> dict[str, Record]:
        if not attacking(job.scenario, job.partition, job.rnd):
            return records
        if job.scenario.attack.kind == "malformed":
            return malform_records(_malformation(job), records)
        delta = flat_delta(records["arrays"], global_arrays)  # type: ignore[arg-type]
        poisoned = poison_update(job.scenario.attack, delta, job.seed)
        return {**records, "arrays": apply_delta(global_arrays, poisoned)}


def _malformation(job: ClientJob) -> str:
    classes = job.scenario.attack.malformations or list(MALFORMATIONS)
    return malformation(classes, job.rnd, job.partition)
