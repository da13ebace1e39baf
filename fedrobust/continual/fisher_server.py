"""Server-side Fisher aggregation for EWC (``continual.ewc.aggregate: true``).

A client that closes a task sends that task's Fisher diagonal in its reply (record
``continual-fisher``, one array per model parameter under the parameter's name; metrics
``continual-fisher-task`` and ``continual-fisher-examples``). The server checks each one
(keys, shapes, dtypes, finite, non-negative, a task the client has finished, an example
count within ``ewc.fisher_samples``, one per client and task); a bad one is dropped with a
counted reason, never stopping the run. Per task it keeps the clients' Fisher merged:
weighted by examples (the mean), or the coordinate-wise median when the scenario runs a
robust defence. Each training message to a client on task ``c`` then carries the
federation's Fisher of tasks ``0..c-1`` folded with online EWC's decay,
``F = sum_t online^(c-1-t) * F_t`` (over the tasks some client contributed), whenever some
client has already sent task ``c-1``'s; the client's EWC penalty uses it, with its own
anchor, in place of its own running Fisher.

Kirkpatrick et al. 2017 (EWC), Schwarz et al. 2018 (online EWC's decay).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message
from torch import nn

from fedrobust.continual.federated import client_offset, schedule
from fedrobust.federation.records import to_node
from fedrobust.federation.screening import model_shaped_problem
from fedrobust.federation.server_hooks import RoundView, ServerHook, ServerSetup
from fedrobust.scenario import Scenario
from fedrobust.strategy.drift import from_tensors, to_tensors

#: The reply's (and the training message's) ArrayRecord: a Fisher diagonal by parameter name.
FISHER_RECORD = "continual-fisher"
#: The training message's ConfigRecord: the last task the sent Fisher covers (key ``task``).
FISHER_TASK = "continual-fisher-task"
#: The reply's metrics: the task its Fisher is of, and the examples it was estimated on.
FISHER_TASK_METRIC = "continual-fisher-task"
FISHER_EXAMPLES_METRIC = "continual-fisher-examples"

Arrays = dict[str, np.ndarray]


def parameter_record(model: nn.Module) -> ArrayRecord:
    """The model's parameters by name, as the shapes and dtypes a Fisher record must have."""
    return fisher_record(model, [p for _, p in model.named_parameters()])


def fisher_record(model: nn.Module, fisher: list[torch.Tensor]) -> ArrayRecord:
    """A Fisher diagonal (in ``model.parameters()`` order) as an ArrayRecord by name."""
    names = [name for name, _ in model.named_parameters()]
    return ArrayRecord(
        {n: Array(f.detach().cpu().numpy().copy()) for n, f in zip(names, fisher, strict=True)}
    )


class FederatedFisher:
    """The clients' Fisher diagonals, merged per task, folded across tasks with a decay.

    Parameters
    ----------
    online : float
        Online EWC's decay (``ewc.online``): task ``t``'s merged Fisher counts
        ``online^(T - t)`` in the Fisher sent for tasks ``0..T``.
    rule : {"mean", "median"}
        How one task's contributions merge: weighted by examples, or coordinate-wise
        median (unweighted; robust to fewer than half of them being hostile).
    """

    def __init__(self, online: float, rule: str = "mean") -> None:
        if rule not in ("mean", "median"):
            raise ValueError(f"unknown Fisher merge rule {rule!r}")
        self.online = online
        self.rule = rule
        self.sums: dict[int, Arrays] = {}  # mean: sum of n_i * F_i per task (float64)
        self.weights: dict[int, float] = {}  # mean: sum of n_i per task
        self.parts: dict[int, list[Arrays]] = {}  # median: every contribution per task
        self.seen: set[tuple[int, int]] = set()  # (partition, task) already contributed

    def tasks(self) -> list[int]:
        """The tasks some client has contributed a Fisher for."""
        return sorted(self.weights if self.rule == "mean" else self.parts)

    def add(self, partition: int, task: int, fisher: Arrays, examples: int) -> bool:
        """Merge one client's Fisher of ``task``; ``False`` when it already sent that task's."""
        if (partition, task) in self.seen:
            return False
        self.seen.add((partition, task))
        if self.rule == "median":
            self.parts.setdefault(task, []).append({k: v.copy() for k, v in fisher.items()})
            return True
        total = self.sums.setdefault(
            task, {k: np.zeros(v.shape, np.float64) for k, v in fisher.items()}
        )
        for key, value in fisher.items():
            total[key] += examples * value.astype(np.float64)
        self.weights[task] = self.weights.get(task, 0.0) + examples
        return True

    def merged(self, task: int) -> Arrays:
        """Task ``task``'s Fisher over its contributions (float64)."""
        if self.rule == "median":
            parts = self.parts[task]
            return {k: np.median(np.stack([p[k] for p in parts]).astype(np.float64), axis=0)
                    for k in parts[0]}  # fmt: skip
        return {k: v / self.weights[task] for k, v in self.sums[task].items()}

    def combined(self, last: int) -> Arrays | None:
        """``sum_t online^(last - t) * F_t`` over the contributed tasks ``t <= last``;
        ``None`` unless task ``last`` has a contribution."""
        if last not in self.tasks():
            return None
        out: Arrays = {}
        for task in (t for t in self.tasks() if t <= last):
            scale = self.online ** (last - task)
            for key, value in self.merged(task).items():
                out[key] = out.get(key, 0.0) + scale * value
        return out

    def state_dict(self) -> dict[str, Any]:
        """Checkpointable state (tensors and plain values)."""
        return {
            "sums": {t: to_tensors(a) for t, a in self.sums.items()},
            "weights": dict(self.weights),
            "parts": {t: [to_tensors(a) for a in parts] for t, parts in self.parts.items()},
            "seen": sorted([list(pair) for pair in self.seen]),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.sums = {int(t): from_tensors(a) for t, a in state["sums"].items()}
        self.weights = {int(t): float(w) for t, w in state["weights"].items()}
        self.parts = {int(t): [from_tensors(a) for a in p] for t, p in state["parts"].items()}
        self.seen = {(int(p), int(t)) for p, t in state["seen"]}


def fisher_problem(msg: Message, expected: ArrayRecord, current: int, cap: int) -> str | None:
    """Why a reply's Fisher cannot be merged, or ``None`` (the reply holds one).

    ``expected``: the model's parameters (:func:`parameter_record`); ``current``: the task
    the client trained this round (its Fisher must be of an earlier one); ``cap``: the
    most examples a Fisher is estimated on (``ewc.fisher_samples``). Reasons: those of
    :func:`~fedrobust.federation.screening.model_shaped_problem` (``missing_records``,
    ``wrong_keys``, ``wrong_shape``, ``non_finite``, ...), ``negative_fisher``,
    ``bad_fisher_task``, ``bad_fisher_examples``.
    """
    if (problem := model_shaped_problem(msg.content.get(FISHER_RECORD), expected)) is not None:
        return problem
    record = msg.content.array_records[FISHER_RECORD]
    if any((a.numpy() < 0).any() for a in record.values()):
        return "negative_fisher"
    metrics = msg.content.metric_records.get("metrics") or {}
    task, examples = metrics.get(FISHER_TASK_METRIC), metrics.get(FISHER_EXAMPLES_METRIC)
    if isinstance(task, bool) or not isinstance(task, int) or not 0 <= task < current:
        return "bad_fisher_task"
    if isinstance(examples, bool) or not isinstance(examples, int) or not 0 < examples <= cap:
        return "bad_fisher_examples"
    return None


def _carries_fisher(msg: Message) -> bool:
    """Whether a reply sends a Fisher (the record, or either of its metrics)."""
    metrics = msg.content.metric_records.get("metrics") or {}
    return FISHER_RECORD in msg.content or any(
        key in metrics for key in (FISHER_TASK_METRIC, FISHER_EXAMPLES_METRIC)
    )


class FisherAggregationHook(ServerHook):
    """``continual.ewc.aggregate``: merge the clients' Fisher diagonals, send them back.

    Each round's ``ewc_fisher`` figure: the Fishers ``received``, those ``dropped`` by
    reason (:func:`fisher_problem`'s, ``duplicate_fisher`` for a second one of the same
    client and task, ``malformed`` when checking raised) and the ``tasks`` merged so far.
    """

    name = "continual-fisher"

    def __init__(self, scenario: Scenario) -> None:
        cl = scenario.continual
        assert cl is not None
        self.scenario = scenario
        self.plan = schedule(cl)
        self.cap = cl.ewc.fisher_samples
        rule = "mean" if scenario.defense.name == "fedavg" else "median"
        self.fisher = FederatedFisher(cl.ewc.online, rule)
        self.dtypes: dict[str, str] = {}  # each parameter's dtype, from the first model seen

    @classmethod
    def create(cls, setup: ServerSetup) -> FisherAggregationHook | None:
        cl = setup.scenario.continual
        on = cl is not None and "ewc" in cl.methods() and cl.ewc.aggregate
        return cls(setup.scenario) if on else None

    def task_of(self, rnd: int, partition: int) -> int:
        """The task ``partition`` trains in round ``rnd`` (its own schedule)."""
        return self.plan.task(rnd, client_offset(self.scenario, partition))

    def configure(
        self, rnd: int, messages: list[Message], sampled: dict[int, int]
    ) -> list[Message]:
        """Attach, to each client past its first task, the federation's Fisher of the
        tasks it has finished (when some client already sent the latest one's)."""
        cache: dict[int, ArrayRecord | None] = {}
        out = []
        for msg in messages:
            last = self.task_of(rnd, sampled[msg.metadata.dst_node_id]) - 1
            if last not in cache:
                cache[last] = self._record(last)
            record = cache[last]
            if record is None:
                out.append(msg)
                continue
            task = ConfigRecord({"task": last})
            out.append(to_node(msg, **{FISHER_RECORD: record, FISHER_TASK: task}))
        return out

    def _record(self, last: int) -> ArrayRecord | None:
        """The Fisher of tasks ``0..last`` as sent (in the model's dtypes), or ``None``."""
        merged = self.fisher.combined(last) if last >= 0 else None
        if merged is None:
            return None
        return ArrayRecord(
            {k: Array(np.asarray(v, dtype=self.dtypes[k])) for k, v in merged.items()}
        )

    def observe(self, view: RoundView, figures: dict[str, Any], model: nn.Module) -> dict[str, Any]:
        """Merge the Fisher diagonals the round's contributors sent; report how many."""
        received, dropped = 0, Counter[str]()
        carriers = [msg for msg in view.outcome.contributors if _carries_fisher(msg)]
        expected = parameter_record(model) if carriers else ArrayRecord()
        if carriers:
            self.dtypes = {k: a.dtype for k, a in expected.items()}
        for msg in carriers:
            partition = view.partition(msg)
            current = self.task_of(view.rnd, partition)
            try:
                problem = fisher_problem(msg, expected, current, self.cap)
            except Exception:  # noqa: BLE001 - a hostile reply never stops the run
                problem = "malformed"
            if problem is None:
                metrics = msg.content.metric_records["metrics"]
                record = msg.content.array_records[FISHER_RECORD]
                arrays = {k: a.numpy() for k, a in record.items()}
                task = int(metrics[FISHER_TASK_METRIC])  # type: ignore[arg-type]
                examples = int(metrics[FISHER_EXAMPLES_METRIC])  # type: ignore[arg-type]
                if not self.fisher.add(partition, task, arrays, examples):
                    problem = "duplicate_fisher"
            if problem is None:
                received += 1
            else:
                dropped[problem] += 1
        return {"ewc_fisher": {"received": received, "dropped": dict(dropped),
                               "tasks": self.fisher.tasks()}}  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {"fisher": self.fisher.state_dict(), "dtypes": dict(self.dtypes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fisher.load_state_dict(state["fisher"])
        self.dtypes = dict(state["dtypes"])
