"""The server's privacy hooks: per-client DP settings, the ledger, the canary audit."""

from __future__ import annotations

import logging
from typing import Any

from flwr.app import ArrayRecord, Message, MetricRecord
from torch import nn

from fedrobust.federation.records import to_node, with_records
from fedrobust.federation.server_hooks import RoundView, ServerHook, ServerSetup
from fedrobust.privacy.accounting import RunPrivacy
from fedrobust.privacy.canaries import audit_model
from fedrobust.privacy.client_dp import UNIFORM_WEIGHT
from fedrobust.scenario import Scenario

log = logging.getLogger("fedrobust.privacy")


class PrivacyHook(ServerHook):
    """``privacy.dp``: each client's sigma and ledger in its recipe, the releases of every
    round recorded (checkpointed), epsilon per round and for the run."""

    name = "privacy"

    def __init__(self, setup: ServerSetup) -> None:
        self.privacy = RunPrivacy(setup.scenario, setup.sizes)

    @classmethod
    def create(cls, setup: ServerSetup) -> PrivacyHook | None:
        return cls(setup) if setup.scenario.privacy.dp.mode != "none" else None

    def configure(
        self, rnd: int, messages: list[Message], sampled: dict[int, int]
    ) -> list[Message]:
        out = []
        for msg in messages:
            shared = msg.content.config_records["config"]
            config = self.privacy.client_config(sampled[msg.metadata.dst_node_id], shared)
            out.append(to_node(msg, config=config))
        return out

    def transform(
        self,
        rnd: int,
        replies: list[Message],
        arrays: ArrayRecord,
        sampled: dict[int, int],
        model: nn.Module,
    ) -> tuple[list[Message], dict[str, Any]]:
        """Client-level DP: every reply weighs 1, whatever the client claims (the noise
        is calibrated for an unweighted mean)."""
        if self.privacy.dp.mode != "client":
            return replies, {}
        uniform = []
        for msg in replies:
            metrics = MetricRecord({**msg.content.metric_records["metrics"], UNIFORM_WEIGHT: 1})
            uniform.append(with_records(msg, metrics=metrics))
        return uniform, {}

    def observe(self, view: RoundView, figures: dict[str, Any], model: nn.Module) -> dict[str, Any]:
        by_client = {view.partition(m): m for m in view.outcome.trained}
        refused = {view.sampled[n] for n in view.outcome.refused}
        chosen = sorted(view.sampled.values())
        return self.privacy.record_round(view.rnd, chosen, refused, by_client, view.aggregated)

    def finish(self, model: nn.Module, totals: dict[str, Any]) -> dict[str, Any]:
        return self.privacy.final()

    def state_dict(self) -> dict[str, Any]:
        return self.privacy.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.privacy.load_state_dict(state)


class AuditHook(ServerHook):
    """``privacy.audit``: the one-run canary audit of the model the run keeps."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario

    @classmethod
    def create(cls, setup: ServerSetup) -> AuditHook | None:
        return cls(setup.scenario) if setup.scenario.privacy.audit is not None else None

    def finish(self, model: nn.Module, totals: dict[str, Any]) -> dict[str, Any]:
        audit = audit_model(self.scenario, model, totals.get("epsilon"))
        log.info("canary audit: %s", audit)
        return {"audit": audit}
