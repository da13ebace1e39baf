"""The client half of ``ewc.aggregate``: the Fisher of a closed task in the reply, and the
federation's Fisher in the penalty when the message carries it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from fedrobust.continual import EWC
from fedrobust.continual.client import CL_EWC, ContinualHook
from fedrobust.continual.fisher_server import (
    FISHER_EXAMPLES_METRIC,
    FISHER_RECORD,
    FISHER_TASK,
    FISHER_TASK_METRIC,
)
from fedrobust.federation.client_hooks import ClientJob, LocalPlan
from fedrobust.models import InputSpec
from fedrobust.models.build import build_model
from fedrobust.scenario import Scenario, parse_scenario
from fedrobust.train import local_train

SPEC = InputSpec((4,), 4)


def _scenario(aggregate: bool = True) -> Scenario:
    return parse_scenario({
        "name": "cl",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}},
        "model": {"name": "mlp", "hidden": [8]},
        "train": {"rounds": 3, "batch_size": 8},
        "continual": {"setting": "class_incremental", "tasks": [[0, 1], [2, 3]],
                      "rounds_per_task": 1, "method": "ewc",
                      "ewc": {"fisher_samples": 16, "aggregate": aggregate}},
    })  # fmt: skip


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((64, 4), dtype=np.float32), np.repeat(np.arange(4), 16)


def _round(hook: ContinualHook, sc: Scenario, rnd: int, content: RecordDict | None = None,
           ) -> tuple[dict, dict, LocalPlan, torch.nn.Module]:  # fmt: skip
    """One client round through the hook: its reply records, metrics, plan and model."""
    x, y = _data()
    torch.manual_seed(rnd)
    model = build_model(sc.model, SPEC)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    job = ClientJob(sc, SPEC, ConfigRecord({}), content or RecordDict({}), rnd, 0, seed=rnd)
    plan = hook.plan(job, model, LocalPlan(x=x, y=y))
    local_train(model, plan.x, plan.y, train=sc.train, num_classes=4, seed=rnd,
                plugins=plan.plugins())  # fmt: skip
    metrics = hook.metrics(job, None, {"num-examples": len(plan.y)})  # type: ignore[arg-type]
    records = hook.reply(job, {"arrays": ArrayRecord(model.state_dict())}, ArrayRecord(weights))
    hook.load_state_dict(hook.state_dict())
    return records, metrics, plan, model


def test_the_round_that_closes_a_task_sends_its_fisher_and_no_other_round_does() -> None:
    sc = _scenario()
    hook = ContinualHook(sc.continual)  # type: ignore[arg-type]
    assert hook.reply_records == (FISHER_RECORD,)
    records, metrics, _, _ = _round(hook, sc, 1)  # task 0: nothing closed
    assert FISHER_RECORD not in records and FISHER_TASK_METRIC not in metrics
    fresh = ContinualHook(sc.continual)  # type: ignore[arg-type]  # one hook per message
    fresh.load_state_dict(hook.state_dict())
    records, metrics, _, model = _round(fresh, sc, 2)  # task 1: task 0 is closed
    assert metrics[FISHER_TASK_METRIC] == 0 and metrics[FISHER_EXAMPLES_METRIC] == 16
    sent = records[FISHER_RECORD]
    assert list(sent.keys()) == [name for name, _ in model.named_parameters()]
    own = fresh.state_dict()[CL_EWC].to_torch_state_dict()  # the first task's Fisher
    for i, name in enumerate(sent.keys()):
        np.testing.assert_allclose(sent[name].numpy(), own[f"fisher.{i}"].numpy())
    later = ContinualHook(sc.continual)  # type: ignore[arg-type]
    later.load_state_dict(fresh.state_dict())
    records, metrics, _, _ = _round(later, sc, 3)  # still task 1
    assert FISHER_RECORD not in records and FISHER_EXAMPLES_METRIC not in metrics
    assert ContinualHook(_scenario(aggregate=False).continual).reply_records == ()  # type: ignore[arg-type]


def _closed_hook(sc: Scenario) -> ContinualHook:
    hook = ContinualHook(sc.continual)  # type: ignore[arg-type]
    _round(hook, sc, 1)
    _round(hook, sc, 2)  # task 0 closed: the client has its own Fisher and anchor
    return hook


def _federation_fisher(model: torch.nn.Module, value: float, task: int = 0) -> RecordDict:
    fisher = ArrayRecord({name: Array(np.full(tuple(p.shape), value, np.float32))
                          for name, p in model.named_parameters()})  # fmt: skip
    return RecordDict({FISHER_RECORD: fisher, FISHER_TASK: ConfigRecord({"task": task})})


def test_the_penalty_uses_the_received_fisher_with_the_clients_own_anchor() -> None:
    sc = _scenario()
    hook = _closed_hook(sc)
    own = hook._ewc()
    assert own is not None
    model = build_model(sc.model, SPEC)
    content = _federation_fisher(model, 2.0)
    job = ClientJob(sc, SPEC, ConfigRecord({}), content, 3, 0, seed=3)
    x, y = _data()
    plan = hook.plan(job, model, LocalPlan(x=x, y=y))
    (ewc,) = [p for p in plan.last if isinstance(p, EWC)]
    with torch.no_grad():  # every weight one above its anchor
        for p, a in zip(model.parameters(), own.anchor, strict=True):
            p.copy_(a + 1.0)
    count = sum(p.numel() for p in model.parameters())  # 4*8 + 8 + 8*4 + 4 = 76
    assert count == 76
    # lambda / 2 * sum_k F_k (w_k - anchor_k)^2 = 100 / 2 * 76 * 2.0 * 1^2
    assert float(ewc.penalty(model).detach()) == pytest.approx(7600.0)  # type: ignore[arg-type]
    for a, b in zip(ewc.anchor, own.anchor, strict=True):
        torch.testing.assert_close(a, b)


def test_without_a_received_fisher_the_client_keeps_its_own() -> None:
    sc = _scenario()
    hook = _closed_hook(sc)
    own = hook._ewc()
    assert own is not None
    x, y = _data()
    job = ClientJob(sc, SPEC, ConfigRecord({}), RecordDict({}), 3, 0, seed=3)
    plan = hook.plan(job, build_model(sc.model, SPEC), LocalPlan(x=x, y=y))
    (ewc,) = [p for p in plan.last if isinstance(p, EWC)]
    for a, b in zip(ewc.fisher, own.fisher, strict=True):
        torch.testing.assert_close(a, b)


def test_a_fisher_of_other_tasks_is_refused_loudly() -> None:
    sc = _scenario()
    hook = _closed_hook(sc)
    model = build_model(sc.model, SPEC)
    job = ClientJob(sc, SPEC, ConfigRecord({}), _federation_fisher(model, 1.0, task=1), 3, 0, 3)
    x, y = _data()
    with pytest.raises(ValueError, match="tasks up to 1"):
        hook.plan(job, model, LocalPlan(x=x, y=y))
