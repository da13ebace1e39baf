"""The curious server: records the updates it receives, attacks them after the run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flwr.app import Message
from torch import nn

from fedrobust.federation.server_hooks import RoundView, ServerHook, ServerSetup
from fedrobust.privacy_attacks.config import PrivacyAttacksConfig
from fedrobust.privacy_attacks.updates import RecordedUpdate, recorded_updates, save_update
from fedrobust.rundir import RunDir

log = logging.getLogger("fedrobust.privacy_attacks")


class PrivacyAttackHook(ServerHook):
    """``evaluation.privacy_attacks``: keep what the server saw, then attack it.

    In each round of ``rounds`` it saves the replies of ``clients`` exactly as the
    transport delivered them (before any attacker or defence changes them); under
    SecAgg+ it can only save the unmasked aggregate. :meth:`finish` runs the attacks on
    the model the run keeps (:func:`fedrobust.privacy_attacks.run.attack_run`).
    """

    def __init__(self, setup: ServerSetup, cfg: PrivacyAttacksConfig, run_dir: Path) -> None:
        self.setup = setup
        self.cfg = cfg
        self.folder = RunDir(run_dir).privacy_attacks
        self.run_dir = run_dir

    @classmethod
    def create(cls, setup: ServerSetup) -> PrivacyAttackHook | None:
        cfg = setup.scenario.evaluation.privacy_attacks
        if cfg is None or setup.run_dir is None:
            return None
        return cls(setup, cfg, setup.run_dir)

    def observe(self, view: RoundView, figures: dict[str, Any], model: nn.Module) -> dict[str, Any]:
        if not self.cfg.records_updates() or view.rnd not in self.cfg.rounds:
            return {}
        scenario = self.setup.scenario
        before = view.arrays.to_torch_state_dict()
        digest = scenario.resume_digest()
        saved = 0
        if scenario.secagg_enabled():
            if view.outcome.replies and view.outcome.contributors:
                contributors = tuple(sorted(view.partition(m) for m in view.outcome.contributors))
                update = RecordedUpdate(
                    view.rnd,
                    "aggregate",
                    contributors,
                    sum(_examples(m) for m in view.outcome.contributors),
                    before,
                    _weights(view.outcome.replies[0]),
                    digest,
                )
                save_update(self.folder, update)
                saved += 1
        else:
            for msg in view.outcome.replies:
                pid = view.partition(msg)
                if pid in self.cfg.recorded_clients():
                    update = RecordedUpdate(
                        view.rnd, "client", (pid,), _examples(msg), before, _weights(msg), digest
                    )
                    save_update(self.folder, update)
                    saved += 1
        return {"privacy_attack_records": saved}

    def finish(self, model: nn.Module, totals: dict[str, Any]) -> dict[str, Any]:
        from fedrobust.privacy_attacks.run import attack_run

        scenario = self.setup.scenario
        updates = recorded_updates(self.folder, scenario.resume_digest())
        attacks = [a for a in self.cfg.attacks if a != "inversion" or updates]
        RunDir(self.run_dir).privacy_attack_results.unlink(missing_ok=True)  # this run's only
        try:
            summary = attack_run(
                self.run_dir, scenario, self.setup.fed, model, self.cfg,
                attacks=attacks, updates=updates,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - an evaluation never costs the run its model
            log.exception("the privacy attacks failed")
            return {"privacy_attacks": {"error": f"{type(exc).__name__}: {exc}"}}
        return {"privacy_attacks": summary}


def _weights(msg: Message) -> dict[str, Any]:
    return msg.content.array_records["arrays"].to_torch_state_dict()


def _examples(msg: Message) -> int:
    return int(msg.content.metric_records["metrics"]["num-examples"])  # type: ignore[arg-type]
