"""The client's adversarial-training hook: the round's attack plugin after augmentation."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from fedrobust.adversarial.training import AdversarialExamples, Mart, Trades
from fedrobust.federation.client_hooks import ClientHook, ClientJob, LocalPlan
from fedrobust.scenario import AdversarialTrainingConfig, Scenario
from fedrobust.train import TrainPlugin


def adversarial_plugin(
    cfg: AdversarialTrainingConfig, rnd: int, num_classes: int, seed: int
) -> TrainPlugin | None:
    """The adversarial-training plugin of round ``rnd`` (none before ``start_round``; the
    round's budget from ``eps_schedule``)."""
    if cfg.method == "none" or rnd < cfg.start_round:
        return None
    eps, alpha = cfg.budget(rnd)
    if cfg.method == "trades":
        return Trades(eps, alpha, cfg.steps, cfg.beta)
    if cfg.method == "mart":
        return Mart(eps, alpha, cfg.steps, cfg.beta)
    attack = "ffgsm" if cfg.method == "fgsm_rs" else "pgdl2" if cfg.norm == "l2" else "pgd"
    steps = 1 if cfg.method == "fgsm_rs" else cfg.steps
    return AdversarialExamples(attack, eps, alpha, steps, cfg.ratio, num_classes, seed)


class AdversarialTrainingHook(ClientHook):
    """``adversarial.training``: PGD-AT, FGSM-RS, TRADES or MART batches."""

    def __init__(self, cfg: AdversarialTrainingConfig) -> None:
        self.cfg = cfg

    @classmethod
    def create(cls, scenario: Scenario) -> AdversarialTrainingHook | None:
        cfg = scenario.adversarial.training
        return cls(cfg) if cfg.method != "none" else None

    def plan(self, job: ClientJob, model: nn.Module, plan: LocalPlan) -> LocalPlan:
        plugin = adversarial_plugin(self.cfg, job.rnd, job.spec.num_classes, job.seed)
        return plan if plugin is None else replace(plan, batch=(*plan.batch, plugin))
