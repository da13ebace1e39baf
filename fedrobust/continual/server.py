"""The server's continual-learning hooks: accuracy on every task after each round, the
accuracy matrix's row when a task ends, each client's replay buffer as its reply reports
it, and forgetting at the end (:class:`ContinualMetricsHook`); the methods that change the
aggregated classifier head, ``class_aware`` and ``wa`` (:class:`ContinualHeadHook`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, Message
from torch import nn

from fedrobust.continual import ContinualMetrics
from fedrobust.continual.class_aware import TRAIN_CLASS, class_aware_rows
from fedrobust.continual.config import HEAD_METHODS
from fedrobust.continual.federated import schedule, seen_mean, task_accuracies
from fedrobust.continual.weight_align import align_weights, aligned_classes
from fedrobust.errors import FedrobustError
from fedrobust.federation.server_hooks import RoundView, ServerHook, ServerSetup
from fedrobust.models.build import build_model
from fedrobust.models.transfer import head_layer
from fedrobust.strategy.drift import replace_floats


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


class ContinualHeadHook(ServerHook):
    """``continual.method`` class_aware and wa: the aggregate's classifier head, before the
    model loads it and the next round sends it (class-aware rows first, then weight
    aligning on the result). The head is the model's last ``nn.Linear``; it must have one
    output per class."""

    def __init__(self, setup: ServerSetup, weight: str, bias: str | None) -> None:
        cl = setup.scenario.continual
        assert cl is not None
        self.scenario = setup.scenario
        self.methods = [m for m in HEAD_METHODS if m in cl.methods()]
        self.num_classes = setup.fed.spec.num_classes
        self.keys = [weight] if bias is None else [weight, bias]
        self.gamma: float | None = None  # weight aligning's factor in the round just done

    @classmethod
    def create(cls, setup: ServerSetup) -> ContinualHeadHook | None:
        cl = setup.scenario.continual
        if cl is None or not set(HEAD_METHODS) & set(cl.methods()):
            return None
        k = setup.fed.spec.num_classes
        found = head_layer(build_model(setup.scenario.model, setup.fed.spec))
        if found is None or found[1].out_features != k:
            raise FedrobustError(
                "continual.method",
                f"class_aware and wa act on the classifier head, the model's last linear "
                f"layer with one output per class ({k}); model '{setup.scenario.model.name}' "
                "has none",
            )
        name, layer = found
        return cls(setup, f"{name}.weight", f"{name}.bias" if layer.bias is not None else None)

    def aggregated(
        self,
        rnd: int,
        new_arrays: ArrayRecord | None,
        replies: list[Message],
        arrays: ArrayRecord,
    ) -> ArrayRecord | None:
        self.gamma = None
        if new_arrays is None:
            return None
        rows = "class_aware" in self.methods and bool(replies)
        classes = aligned_classes(self.scenario, rnd) if "wa" in self.methods else None
        if not rows and classes is None:
            return new_arrays  # nothing to change this round (wa alone, on the first task)
        head = {key: new_arrays[key].numpy() for key in self.keys}
        if rows:
            head = self._class_aware(replies, arrays)
        if classes is not None:
            head = self._align(head, *classes)
        return replace_floats(new_arrays, head)

    def _align(
        self, head: dict[str, np.ndarray], old: list[int], new: list[int]
    ) -> dict[str, np.ndarray]:
        """``head`` with the new classes' rows (and biases) weight-aligned to the old ones'."""
        weight, *bias = (torch.from_numpy(head[key]) for key in self.keys)
        aligned, scaled, self.gamma = align_weights(weight, bias[0] if bias else None, old, new)
        out = {self.keys[0]: aligned.numpy()}
        if scaled is not None:
            out[self.keys[1]] = scaled.numpy()
        return out

    def _class_aware(self, replies: list[Message], arrays: ArrayRecord) -> dict[str, np.ndarray]:
        """The head's rows averaged per class over ``replies`` by their training counts."""
        counts = np.array(
            [[_metric(msg, TRAIN_CLASS.format(c)) for c in range(self.num_classes)]
             for msg in replies]
        )  # fmt: skip
        return {
            key: class_aware_rows(arrays[key].numpy(),
                                  [msg.content.array_records["arrays"][key].numpy()
                                   for msg in replies], counts)
            for key in self.keys
        }  # fmt: skip

    def observe(self, view: RoundView, figures: dict[str, Any], model: nn.Module) -> dict[str, Any]:
        """``wa_gamma``: the factor weight aligning scaled the new classes' rows by."""
        return {} if self.gamma is None else {"wa_gamma": self.gamma}


def _metric(msg: Message, key: str) -> float:
    """A reply's count ``key``; one missing, negative or not finite counts 0 (a row is
    then left to the clients that did report it)."""
    metrics = msg.content.metric_records.get("metrics")
    value = float(metrics.get(key, 0)) if metrics is not None else 0.0  # type: ignore[arg-type]
    return value if np.isfinite(value) and value > 0 else 0.0
