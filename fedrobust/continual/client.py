"""The client's continual-learning hook: this round's task, its data and method plugins.

The client keeps, in ``context.state``, the task it last trained, its replay buffer (with
each example's logits at insertion for der and derpp),
its EWC penalty (Fisher and anchor), under EWC's ``anchor: local`` its own model after
its last round (the end of its task so far) and, for LwF, the global model at the start
of the current task. When a new task begins (the client may have sat out the previous
task's last rounds) the finished tasks are closed first: their data joins the buffer,
their Fisher is folded into EWC (taken at the client's own model at the end of the task
it trained, or at the global model now received: ``ewc.anchor``), and the received
global model becomes LwF's teacher. Under ``ewc.aggregate`` the reply of the round that
closes a task carries that task's Fisher (the latest finished task with data), and a
training message that carries the federation's Fisher of every finished task
(:mod:`fedrobust.continual.fisher_server`) replaces the client's own in the penalty,
with the client's own anchor. The buffer methods (``replay``, ``der``, ``derpp``,
``er_ace``) share the one buffer; the reply's metrics report its size and its examples
per class. Under ``class_aware`` they also report the examples of each class the client
trained on this round (``train-class-<c>``: the task's data plus the buffer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord
from torch import nn

from fedrobust.continual import EWC, LwF, Replay, ReservoirBuffer, TaskMask, fisher_diagonal
from fedrobust.continual.class_aware import TRAIN_CLASS, class_counts
from fedrobust.continual.config import LOGIT_METHODS
from fedrobust.continual.der import DarkReplay
from fedrobust.continual.er_ace import ERACE
from fedrobust.continual.ewc import snapshot
from fedrobust.continual.federated import (
    client_offset,
    schedule,
    task_classes,
    task_data,
    task_model,
)
from fedrobust.continual.fisher_server import (
    FISHER_EXAMPLES_METRIC,
    FISHER_RECORD,
    FISHER_TASK,
    FISHER_TASK_METRIC,
    fisher_record,
)
from fedrobust.continual.replay import balanced_union
from fedrobust.federation.client_hooks import ClientHook, ClientJob, LocalPlan
from fedrobust.federation.records import Record
from fedrobust.models.build import build_model
from fedrobust.scenario import ContinualConfig, Scenario
from fedrobust.train import TrainPlugin, TrainResult

CL_TASK = "continual-task"  # the task this client last trained
CL_BUFFER = "continual-replay"
CL_EWC = "continual-ewc"
CL_OLD = "continual-lwf-model"  # the global model at the start of the current task
CL_END = "continual-ewc-end"  # this client's model after its last round (ewc.anchor local)


class ContinualHook(ClientHook):
    """``continual``: train the round's task with replay, EWC and LwF."""

    state_keys = (CL_TASK, CL_BUFFER, CL_EWC, CL_OLD, CL_END)

    def __init__(self, cfg: ContinualConfig) -> None:
        self.cfg = cfg
        self.records: dict[str, Record] = {}
        self._trained: nn.Module | None = None  # the model local training updates in place
        self.aggregate = "ewc" in cfg.methods() and cfg.ewc.aggregate
        self.union = cfg.buffer_method() == "replay" and cfg.replay.mode == "union"
        self.reply_records = (FISHER_RECORD,) if self.aggregate else ()
        # ewc.aggregate: the task closed this round, its Fisher record and example count
        self._closed: tuple[int, ArrayRecord, int] | None = None
        self._counts: np.ndarray | None = None  # examples per class this round (class_aware)
        self._held = 0

    @classmethod
    def create(cls, scenario: Scenario) -> ContinualHook | None:
        return cls(scenario.continual) if scenario.continual is not None else None

    def load_state_dict(self, state: Mapping[str, Record]) -> None:
        self.records = dict(state)

    def state_dict(self) -> dict[str, Record]:
        return dict(self.records)

    def plan(self, job: ClientJob, model: nn.Module, plan: LocalPlan) -> LocalPlan:
        cl, seed = self.cfg, job.scenario.seed
        task = schedule(cl).task(job.rnd, client_offset(job.scenario, job.partition))
        self._closed = None
        self._held = len(plan.y)  # the client's training examples, all tasks together
        self._advance(job, task, model, plan)
        self._trained = model
        x, y = task_data(cl, seed, plan.x, plan.y, task)
        first, last = self._plugins(job, task, model, (x, y))
        if self.union:
            generator = torch.Generator().manual_seed(job.seed)
            x, y = balanced_union(x, y, self._buffer(seed), generator)
        if "class_aware" in cl.methods():
            self._counts = class_counts(y, job.spec.num_classes)
            if cl.buffer_method() is not None and not self.union:  # its batches join each step
                for c, n in self._buffer(seed).counts().items():
                    self._counts[c] += n
        return replace(plan, x=x, y=y, first=(*first, *plan.first), last=(*plan.last, *last))

    def _advance(self, job: ClientJob, task: int, model: nn.Module, plan: LocalPlan) -> None:
        """Close the tasks this client finished since it last trained."""
        cl, seed = self.cfg, job.scenario.seed
        record = self.records.get(CL_TASK)
        last = int(record["task"]) if record is not None else -1  # type: ignore[arg-type]
        if task <= last:
            return
        methods = cl.methods()
        finished = range(max(last, 0), task)  # the last trained one and any skipped
        if cl.buffer_method() is not None and len(finished):
            buffer = self._buffer(seed)
            for t in finished:
                xt, yt = task_data(cl, seed, plan.x, plan.y, t)
                z = _logits(model, xt) if cl.buffer_method() in LOGIT_METHODS else None
                buffer.add(torch.as_tensor(xt), torch.as_tensor(yt), z)
            self.records[CL_BUFFER] = ArrayRecord(buffer.state_dict())
        if "ewc" in methods and len(finished):
            ewc = self._ewc()
            for t in finished:
                xt, yt = task_data(cl, seed, plan.x, plan.y, t)
                if len(yt) == 0:
                    continue
                at = self._end_model(job) if t == last else None
                at = model if at is None else at
                fisher = fisher_diagonal(task_model(cl, at, t), xt, yt, kind=cl.ewc.fisher,
                                         samples=cl.ewc.fisher_samples, seed=job.seed)  # fmt: skip
                if self.aggregate:
                    examples = min(cl.ewc.fisher_samples, len(yt))
                    self._closed = (t, fisher_record(model, fisher), examples)
                if ewc is None:
                    ewc = EWC(fisher, snapshot(at), cl.ewc.lambda_)
                else:
                    ewc.consolidate(fisher, snapshot(at), cl.ewc.online)
            if ewc is not None:
                self.records[CL_EWC] = ArrayRecord(ewc.state_dict())
        if "lwf" in methods and task > 0:
            self.records[CL_OLD] = ArrayRecord(model.state_dict())
        self.records[CL_TASK] = ConfigRecord({"task": task})

    def _end_model(self, job: ClientJob) -> nn.Module | None:
        """This client's own model after its last round (``None`` under ``anchor: global``)."""
        record = self.records.get(CL_END)
        if self.cfg.ewc.anchor != "local" or record is None:
            return None
        end = build_model(job.scenario.model, job.spec)
        end.load_state_dict(record.to_torch_state_dict())  # type: ignore[union-attr]
        return end

    def reply(
        self, job: ClientJob, records: dict[str, Record], global_arrays: ArrayRecord
    ) -> dict[str, Record]:
        """Keep the model this client just trained (EWC's anchor at the end of its task);
        under ``ewc.aggregate``, send the Fisher of the task closed this round."""
        if "ewc" in self.cfg.methods() and self.cfg.ewc.anchor == "local":
            assert self._trained is not None, "plan() runs before reply()"
            self.records[CL_END] = ArrayRecord(self._trained.state_dict())
        if self._closed is not None:
            records = {**records, FISHER_RECORD: self._closed[1]}
        return records

    def metrics(
        self, job: ClientJob, result: TrainResult, metrics: dict[str, float | int]
    ) -> dict[str, float | int]:
        """The replay buffer's size and examples per class (``replay-size``,
        ``replay-class-<c>`` for every class), under a buffer method; under
        ``ewc.aggregate``, the task of the Fisher sent and its examples; under class_aware
        the examples of each class trained on this round (``train-class-<c>``). Under
        ``replay.mode: union`` the reply's ``num-examples`` (its weight in the average) is
        at most the examples the client holds: the union repeats the buffer's examples,
        and domain-incrementally the task's data is all of them, so the union would claim
        more than the client declared (and the server drops such a reply)."""
        if self.union and "num-examples" in metrics:
            metrics = {**metrics, "num-examples": min(int(metrics["num-examples"]), self._held)}
        if self._closed is not None:
            task, _, examples = self._closed
            metrics = {**metrics, FISHER_TASK_METRIC: task, FISHER_EXAMPLES_METRIC: examples}
        if self._counts is not None:
            counts = {TRAIN_CLASS.format(c): int(n) for c, n in enumerate(self._counts)}
            metrics = {**metrics, **counts}
        if self.cfg.buffer_method() is None:
            return metrics
        buffer = self._buffer(job.scenario.seed)
        counts = buffer.counts()
        figures: dict[str, float | int] = {"replay-size": len(buffer)}
        for c in range(job.spec.num_classes):
            figures[f"replay-class-{c}"] = counts.get(c, 0)
        return {**metrics, **figures}

    def _buffer(self, seed: int) -> ReservoirBuffer:
        """This client's replay buffer (empty before its first task ends)."""
        buffer = ReservoirBuffer(self.cfg.replay.buffer_size, seed, self.cfg.replay.balance)
        record = self.records.get(CL_BUFFER)
        if record is not None:
            buffer.load_state_dict(record.to_torch_state_dict())  # type: ignore[union-attr]
        return buffer

    def _ewc(self) -> EWC | None:
        """This client's EWC penalty (``None`` before its first task ends)."""
        record = self.records.get(CL_EWC)
        if record is None:
            return None
        ewc = EWC([], [], self.cfg.ewc.lambda_)
        ewc.load_state_dict(record.to_torch_state_dict())  # type: ignore[union-attr]
        return ewc

    def _federated(self, job: ClientJob, task: int, model: nn.Module, ewc: EWC) -> EWC:
        """``ewc`` with the federation's Fisher of tasks ``0..task-1`` when the message
        carries it (:mod:`~fedrobust.continual.fisher_server`), else ``ewc`` itself.

        Raises
        ------
        ValueError
            A Fisher for other tasks or other parameters than this client's (its error
            reply drops it from the round instead of mixing).
        """
        record = job.content.array_records.get(FISHER_RECORD)
        if record is None:
            return ewc
        sent = job.content.config_records.get(FISHER_TASK)
        if sent is None or sent.get("task") != task - 1:
            got = None if sent is None else sent.get("task")
            raise ValueError(f"a Fisher of tasks up to {got} reached a client on task {task}")
        names = [name for name, _ in model.named_parameters()]
        if list(record.keys()) != names:
            raise ValueError("the federation's Fisher does not match the model's parameters")
        fisher = [torch.from_numpy(record[name].numpy().copy()) for name in names]
        return EWC(fisher, ewc.anchor, ewc.lam)

    def _plugins(
        self,
        job: ClientJob,
        task: int,
        model: nn.Module,
        data: tuple[np.ndarray, np.ndarray],
    ) -> tuple[tuple[TrainPlugin, ...], tuple[TrainPlugin, ...]]:
        """Plugins before the round's others (task head, replay) and after them (EWC, LwF);
        ``data``: the round's task data (ER-ACE's memory draws from it too)."""
        cl = self.cfg
        first: list[TrainPlugin] = []
        last: list[TrainPlugin] = []
        methods = cl.methods()
        if cl.setting == "task_incremental":
            first.append(TaskMask(task_classes(cl, task) or []))
        buffered = cl.buffer_method()
        buffer = self._buffer(job.scenario.seed) if buffered is not None else None
        if buffered == "replay" and cl.replay.mode == "mix" and buffer is not None and len(buffer):
            first.append(Replay(buffer, cl.replay.ratio, job.seed))
        if buffered in LOGIT_METHODS and buffer is not None and len(buffer):
            beta = cl.der.beta_value() if buffered == "derpp" else 0.0
            first.append(DarkReplay(buffer, cl.der.alpha, beta, cl.replay.ratio, job.seed))
        if buffered == "er_ace" and buffer is not None:
            current = (torch.as_tensor(data[0]), torch.as_tensor(data[1]))
            share = 1 / (task + 1)  # tasks 0..task-1 are in the buffer: each task alike
            first.append(ERACE(buffer, cl.replay.ratio, job.seed, current, share))
        if "ewc" in methods and (ewc := self._ewc()) is not None:
            last.append(self._federated(job, task, model, ewc) if self.aggregate else ewc)
        record = self.records.get(CL_OLD)
        if "lwf" in methods and task > 0 and record is not None:
            old = build_model(job.scenario.model, job.spec)
            old.load_state_dict(record.to_torch_state_dict())  # type: ignore[union-attr]
            seen = None if cl.tasks is None else [c for g in cl.tasks[:task] for c in g]
            last.append(LwF(old, cl.lwf.temperature, cl.lwf.alpha, classes=seen))
        return tuple(first), tuple(last)


@torch.no_grad()
def _logits(model: nn.Module, x: np.ndarray) -> torch.Tensor:
    """The model's logits on ``x`` in eval mode (what der and derpp store with ``x``)."""
    was_training = model.training
    model.eval()
    try:
        return model(torch.as_tensor(x)).float()
    finally:
        model.train(was_training)
