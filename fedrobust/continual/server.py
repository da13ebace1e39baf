"""The server's continual-learning hook: accuracy on every task after each round, the
accuracy matrix's row when a task ends, each client's replay buffer as its reply reports
it, and forgetting at the end."""

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
        figures = {"task": task, "task_accuracy": row, "seen_accuracy": seen_mean(row, task)}
        if cl.buffer_method() is not None:
            figures["replay_buffer"] = self._buffers(view)
        return figures

    def _buffers(self, view: RoundView) -> list[dict[str, Any]]:
        """Each contributor's buffer: its size and examples per class (from its metrics)."""
        buffers = []
        for msg in view.outcome.contributors:
            metrics = msg.content.metric_records.get("metrics")
            if metrics is None or "replay-size" not in metrics:
                continue
            per_class = [metrics.get(f"replay-class-{c}", 0)
                         for c in range(self.fed.spec.num_classes)]  # fmt: skip
            buffers.append({"client": view.partition(msg), "size": metrics["replay-size"],
                            "per_class": per_class})  # fmt: skip
        return buffers

    def finish(self, model: nn.Module, totals: dict[str, Any]) -> dict[str, Any]:
        return {"continual": self.metrics.to_dict()}
