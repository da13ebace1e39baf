"""The server's continual-learning hook: accuracy on every task after each round, the
accuracy matrix's row when a task ends, and forgetting at the end."""

from __future__ import annotations

from typing import Any

from torch import nn

from fedrobust.continual import ContinualMetrics
from fedrobust.continual.federated import schedule, seen_mean, task_accuracies
from fedrobust.federation.server_hooks import RoundView, ServerHook, ServerSetup


class ContinualMetricsHook(ServerHook):
    """``continual``."""

    def __init__(self, setup: ServerSetup) -> None:
        self.scenario = setup.scenario
        self.fed = setup.fed
        self.metrics = ContinualMetrics()

    @classmethod
    def create(cls, setup: ServerSetup) -> ContinualMetricsHook | None:
        return cls(setup) if setup.scenario.continual is not None else None

    def observe(self, view: RoundView, figures: dict[str, Any], model: nn.Module) -> dict[str, Any]:
        cl, fed, rnd = self.scenario.continual, self.fed, view.rnd
        assert cl is not None
        plan = schedule(cl)
        task = plan.task(rnd)
        row = task_accuracies(cl, self.scenario.seed, model, fed.x_test, fed.y_test,
                              fed.spec.num_classes)  # fmt: skip
        ends = plan.is_last_round_of_task(rnd) or rnd == self.scenario.train.rounds
        if ends and task == len(self.metrics.rows):
            self.metrics.record(task, row)
        return {"task": task, "task_accuracy": row, "seen_accuracy": seen_mean(row, task)}

    def finish(self, model: nn.Module, totals: dict[str, Any]) -> dict[str, Any]:
        return {"continual": self.metrics.to_dict()}
