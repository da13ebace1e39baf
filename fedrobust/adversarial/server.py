"""The server's robust-evaluation hook: robust accuracy of the global model on the test
set, every ``every_n_rounds`` rounds, in the last round and of the model the run keeps."""

from __future__ import annotations

from typing import Any

from torch import nn

from fedrobust.adversarial.evaluation import robust_accuracy
from fedrobust.data import Federation
from fedrobust.federation.server_hooks import RoundView, ServerHook, ServerSetup
from fedrobust.scenario import Scenario


def scenario_robust_accuracy(
    scenario: Scenario, model: nn.Module, fed: Federation
) -> dict[str, float]:
    """Robust accuracy as the scenario's ``adversarial.evaluation`` asks, on its test set."""
    cfg = scenario.adversarial.evaluation
    if cfg is None:
        return {}
    return robust_accuracy(
        model, fed.x_test, fed.y_test, cfg.attacks, cfg.eps, steps=cfg.steps, norm=cfg.norm,
        num_samples=cfg.num_samples, num_classes=fed.spec.num_classes, seed=scenario.seed,
    )  # fmt: skip


class RobustEvaluationHook(ServerHook):
    """``adversarial.evaluation``."""

    def __init__(self, setup: ServerSetup) -> None:
        self.scenario = setup.scenario
        self.fed = setup.fed
        self.measured: tuple[int, dict[str, float]] | None = None  # the last round attacked

    @classmethod
    def create(cls, setup: ServerSetup) -> RobustEvaluationHook | None:
        return cls(setup) if setup.scenario.adversarial.evaluation is not None else None

    def observe(self, view: RoundView, figures: dict[str, Any], model: nn.Module) -> dict[str, Any]:
        cfg = self.scenario.adversarial.evaluation
        assert cfg is not None
        if view.rnd % cfg.every_n_rounds == 0 or view.rnd == self.scenario.train.rounds:
            figures = scenario_robust_accuracy(self.scenario, model, self.fed)
            self.measured = (view.rnd, figures)
            return {"robust_accuracy": figures}
        return {}

    def finish(self, model: nn.Module, totals: dict[str, Any]) -> dict[str, Any]:
        # of the model the run keeps: already attacked when it is the last round measured
        if self.measured is not None and self.measured[0] == totals.get("model_round"):
            return {"robust_accuracy": dict(self.measured[1])}
        return {"robust_accuracy": scenario_robust_accuracy(self.scenario, model, self.fed)}
