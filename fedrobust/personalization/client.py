"""The client side of personalization: private parameters in ``context.state``, never in
a reply.

fedper, fedrep and fedbn load the client's private layers over the received global ones
before training and send the received global values back for them (an update of zero:
nothing of them leaves the client, under any transport or defence); ditto trains its
private model after the global update; finetune keeps nothing between rounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from flwr.app import ArrayRecord
from torch import nn

from fedrobust.data import ClientData
from fedrobust.federation.client_hooks import ClientHook, ClientJob, LocalPlan
from fedrobust.federation.records import Record
from fedrobust.models.build import build_model
from fedrobust.personalization.config import PersonalizationConfig
from fedrobust.personalization.methods import (
    State,
    personal_copy,
    private_keys,
    set_trainable,
    taken,
    train_for,
    train_head,
    with_state,
)
from fedrobust.scenario import Scenario
from fedrobust.train import ProximalTerm, TrainPlugin, round_lr

PERSONAL = "personal"


class LoadPrivate(TrainPlugin):
    """Puts the client's private layers into the model before training; fedrep then
    trains its head with the body frozen and freezes the head for the body's epochs."""

    def __init__(self, hook: PersonalizationHook, job: ClientJob, data: LocalPlan) -> None:
        self.hook, self.job, self.data = hook, job, data

    def before_training(self, model: nn.Module) -> nn.Module:
        hook, job = self.hook, self.job
        model = with_state(model, hook.state)
        if hook.cfg.method == "fedrep":
            train_head(
                model, hook.keys(model), self.data.x, self.data.y, job.scenario.train,
                hook.cfg.head_epochs, num_classes=job.spec.num_classes, seed=job.seed + 1,
                lr=_lr(job),
            )  # fmt: skip
            set_trainable(model, hook.keys(model), False)
        return model


class PersonalizationHook(ClientHook):
    """``personalization.method``: the client's personal model and what stays private."""

    state_keys = (PERSONAL,)

    def __init__(self, cfg: PersonalizationConfig) -> None:
        self.cfg = cfg
        self.state: State | None = None
        self._keys: list[str] | None = None

    @classmethod
    def create(cls, scenario: Scenario) -> PersonalizationHook | None:
        cfg = scenario.personalization
        return None if cfg is None else cls(cfg)

    def keys(self, model: nn.Module) -> list[str]:
        """The private ``state_dict`` keys of ``model`` (fedper, fedrep, fedbn)."""
        if self._keys is None:
            self._keys = private_keys(model, self.cfg)
        return self._keys

    def load_state_dict(self, state: Mapping[str, Record]) -> None:
        record = state.get(PERSONAL)
        self.state = record.to_torch_state_dict() if isinstance(record, ArrayRecord) else None

    def state_dict(self) -> dict[str, Record]:
        return {} if self.state is None else {PERSONAL: ArrayRecord(self.state)}

    def plan(self, job: ClientJob, model: nn.Module, plan: LocalPlan) -> LocalPlan:
        if self.cfg.method not in ("fedper", "fedrep", "fedbn"):
            return plan
        return replace(plan, first=(LoadPrivate(self, job, plan), *plan.first))

    def personal(self, job: ClientJob, model: nn.Module, data: ClientData) -> nn.Module | None:
        if job.evaluating:
            return self._at_evaluation(job, model, data)
        method = self.cfg.method
        if method in ("fedper", "fedrep", "fedbn"):
            set_trainable(model, self.keys(model), True)
            self.state = taken(model, self.keys(model))
            return model
        if method == "ditto":  # v starts where it ended, or the first time at the received w
            personal = build_model(job.scenario.model, job.spec)
            personal.load_state_dict(job.content.array_records["arrays"].to_torch_state_dict())
            global_params = [p.detach().clone() for p in personal.parameters()]
            personal = with_state(personal, self.state)
            train_for(
                personal, data.x_train, data.y_train, job.scenario.train,
                self.cfg.personal_epochs, num_classes=job.spec.num_classes,
                seed=job.seed + 2, lr=_lr(job),
                plugins=(ProximalTerm(self.cfg.lambda_, anchor=global_params),),
            )  # fmt: skip
            self.state = {k: v.detach().clone() for k, v in personal.state_dict().items()}
            return personal
        return model  # finetune: the model the client trained this round

    def _at_evaluation(self, job: ClientJob, model: nn.Module, data: ClientData) -> nn.Module:
        """The personal model for an evaluate message (the state is read, not changed)."""
        personal = personal_copy(model)
        method, train = self.cfg.method, job.scenario.train
        k = job.spec.num_classes
        if method == "finetune":
            return train_for(
                personal, data.x_train, data.y_train, train, self.cfg.finetune_epochs,
                num_classes=k, seed=job.seed + 3, lr=_lr(job),
            )  # fmt: skip
        if method == "ditto":
            return with_state(personal, self.state)
        personal = with_state(personal, self.state)
        if method == "fedrep":
            train_head(
                personal, self.keys(personal), data.x_train, data.y_train, train,
                self.cfg.head_epochs, num_classes=k, seed=job.seed + 1, lr=_lr(job),
            )  # fmt: skip
        return personal

    def reply(
        self, job: ClientJob, records: dict[str, Record], global_arrays: ArrayRecord
    ) -> dict[str, Record]:
        if self.cfg.method not in ("fedper", "fedrep", "fedbn") or self._keys is None:
            return records
        private = set(self._keys)
        trained = records["arrays"]
        assert isinstance(trained, ArrayRecord)
        kept = ArrayRecord()
        for key in trained.keys():
            kept[key] = global_arrays[key] if key in private else trained[key]
        return {**records, "arrays": kept}


def _lr(job: ClientJob) -> float:
    train = job.scenario.train
    return round_lr(train.lr_schedule, train.optimizer.lr, job.rnd, train.rounds)
