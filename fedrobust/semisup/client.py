"""The client side of limited labels: the labelled / unlabelled split, and the unlabelled
term of semi-supervised training.

With ``data.labeled_fraction < 1`` the client trains on the labelled part of its training
data only (its reply's ``num-examples``, the aggregation weight, is that part's size);
with ``train.semi_supervised`` a :class:`~fedrobust.semisup.methods.SemiSupervisedTerm`
adds the unlabelled rest's term to every batch. Validation and test splits keep their
labels.
"""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from fedrobust.federation.client_hooks import ClientHook, ClientJob, LocalPlan
from fedrobust.scenario import Scenario
from fedrobust.semisup.methods import SemiSupervisedTerm
from fedrobust.semisup.split import split_labeled
from fedrobust.train import TrainResult


class SemiSupervisedHook(ClientHook):
    """``data.labeled_fraction`` and ``train.semi_supervised``: what a client trains on."""

    def __init__(self) -> None:
        self.term: SemiSupervisedTerm | None = None
        self.num_unlabeled = 0

    @classmethod
    def create(cls, scenario: Scenario) -> SemiSupervisedHook | None:
        return cls() if scenario.data.labeled_fraction < 1 else None

    def plan(self, job: ClientJob, model: nn.Module, plan: LocalPlan) -> LocalPlan:
        scenario = job.scenario
        split = split_labeled(
            plan.x, plan.y, scenario.data.labeled_fraction, scenario.seed, job.partition
        )
        self.num_unlabeled = len(split.unlabeled)
        plan = replace(plan, x=split.x, y=split.y)
        cfg = scenario.train.semi_supervised
        if cfg is None or self.num_unlabeled == 0:
            return plan
        self.term = SemiSupervisedTerm(
            cfg, split.unlabeled, scenario.train.batch_size, job.seed, job.rnd
        )
        return replace(plan, terms=(*plan.terms, self.term))

    def metrics(
        self, job: ClientJob, result: TrainResult, metrics: dict[str, float | int]
    ) -> dict[str, float | int]:
        figures: dict[str, float | int] = {"num-unlabeled": self.num_unlabeled}
        if self.term is not None and self.term.seen:
            figures["pseudo-label-rate"] = self.term.mask_rate()
        return {**metrics, **figures}
