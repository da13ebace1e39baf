"""The client's privacy hooks: DP-SGD with its ledger and budget, client-level DP's weight.

The client's own ledger (``context.state``) is authoritative; the server's copy in the
recipe (``dp-history``) fills in after a restart that lost the client's state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace

from flwr.app import ConfigRecord
from torch import nn

from fedrobust.federation.client_hooks import ClientHook, ClientJob, LocalPlan, Refusal
from fedrobust.federation.records import Record
from fedrobust.privacy.client_dp import UNIFORM_WEIGHT
from fedrobust.privacy.dpsgd import DPSGDRecipe
from fedrobust.privacy.ledger import LedgerEntry, epsilon
from fedrobust.privacy.plan import round_steps
from fedrobust.scenario import Scenario
from fedrobust.train import TrainResult

LEDGER_KEY = "dp-ledger"


def ledger_record(entries: list[LedgerEntry]) -> ConfigRecord:
    """The ConfigRecord a client keeps its releases in."""
    return ConfigRecord({"entries": json.dumps([e.to_dict() for e in entries])})


def ledger_entries(record: ConfigRecord | None) -> list[LedgerEntry]:
    """The releases in a :func:`ledger_record` (none for ``None``)."""
    if record is None:
        return []
    return [LedgerEntry.from_dict(e) for e in json.loads(str(record["entries"]))]


class DPSGDHook(ClientHook):
    """``privacy.dp.mode: sample``: Opacus DP-SGD, the client's ledger and its budget."""

    state_keys = (LEDGER_KEY,)

    def __init__(self, scenario: Scenario) -> None:
        self.dp = scenario.privacy.dp
        self.own: list[LedgerEntry] = []
        self.recipe: DPSGDRecipe | None = None
        self.saved: list[LedgerEntry] | None = None

    @classmethod
    def create(cls, scenario: Scenario) -> DPSGDHook | None:
        return cls(scenario) if scenario.privacy.dp.mode == "sample" else None

    def load_state_dict(self, state: Mapping[str, Record]) -> None:
        self.own = ledger_entries(state.get(LEDGER_KEY))  # type: ignore[arg-type]

    def state_dict(self) -> dict[str, Record]:
        return {} if self.saved is None else {LEDGER_KEY: ledger_record(self.saved)}

    def recipe_for(self, job: ClientJob) -> DPSGDRecipe:
        """This round's DP-SGD recipe, with the client's past releases."""
        history = json.loads(str(job.config.get("dp-history", "[]")))
        sent = [LedgerEntry.from_dict(e) for e in history]
        # the server's copy only adds the rounds this client has no entry for (its state
        # was lost in a restart); it never replaces what the client recorded itself
        mine = {e.round for e in self.own}
        past = sorted([*self.own, *(e for e in sent if e.round not in mine)],
                      key=lambda e: e.round)  # fmt: skip
        dp = self.dp
        return DPSGDRecipe(
            noise_multiplier=float(job.config["dp-noise-multiplier"]),  # type: ignore[arg-type]
            max_grad_norm=dp.max_grad_norm,
            accountant=dp.accountant,
            poisson_sampling=dp.poisson_sampling,
            grad_sample_mode=dp.grad_sample_mode,
            max_physical_batch_size=dp.max_physical_batch_size,
            delta=dp.delta,
            past=tuple(past),
            reproducible=dp.reproducible,
        )

    def refuse(self, job: ClientJob, num_train: int) -> Refusal | None:
        recipe = self.recipe = self.recipe_for(job)
        policy = job.policy
        floor = policy.min_noise_multiplier
        if floor is not None and recipe.noise_multiplier < floor:
            return Refusal("policy", {"noise-multiplier": recipe.noise_multiplier})
        limits = [
            ("budget_exhausted", self.dp.budget),
            ("policy", policy.max_epsilon),
        ]
        if all(limit is None for _, limit in limits):
            return None
        rate, steps = round_steps(num_train, job.scenario.train, recipe.poisson_sampling)
        planned = LedgerEntry(recipe.noise_multiplier, rate, steps, job.rnd)
        after = epsilon([*recipe.past, planned], recipe.delta, recipe.accountant)
        for reason, limit in limits:
            if limit is not None and after > limit + 1e-9:
                spent = epsilon(list(recipe.past), recipe.delta, recipe.accountant)
                return Refusal(reason, {"epsilon": spent, "epsilon-next": after})
        return None

    def plan(self, job: ClientJob, model: nn.Module, plan: LocalPlan) -> LocalPlan:
        assert self.recipe is not None
        return replace(plan, dp=self.recipe)

    def metrics(
        self, job: ClientJob, result: TrainResult, metrics: dict[str, float | int]
    ) -> dict[str, float | int]:
        if self.recipe is None or result.privacy is None:
            return metrics
        self.saved = [*self.recipe.past, result.privacy]
        return {
            **metrics,
            "epsilon": float(result.epsilon or 0.0),
            "dp-noise-multiplier": result.privacy.noise_multiplier,
            "dp-sample-rate": result.privacy.sample_rate,
            "dp-steps": result.privacy.steps,
        }


class PolicyHook(ClientHook):
    """The device owner's policy (:mod:`fedrobust.privacy.policy`): refuse a round that
    would leave the device unmasked, or without the DP-SGD the owner demands (the
    DP-SGD hook checks sigma and epsilon against it)."""

    @classmethod
    def create(cls, scenario: Scenario) -> PolicyHook:
        return cls()

    def refuse(self, job: ClientJob, num_train: int) -> Refusal | None:
        policy = job.policy
        if policy.require_secagg and not job.secure:
            return Refusal("policy")
        if policy.needs_dp_sgd() and job.scenario.privacy.dp.mode != "sample":
            return Refusal("policy")
        return None


class ClientLevelDPHook(ClientHook):
    """``privacy.dp.mode: client``: DP-FedAvg's noise assumes an unweighted average, so
    the client reports weight 1 (clipping is Flower's mod, or the SecAgg stage's)."""

    @classmethod
    def create(cls, scenario: Scenario) -> ClientLevelDPHook | None:
        return cls() if scenario.privacy.dp.mode == "client" else None

    def metrics(
        self, job: ClientJob, result: TrainResult, metrics: dict[str, float | int]
    ) -> dict[str, float | int]:
        return {**metrics, UNIFORM_WEIGHT: 1}
