"""The continual client hook across a task boundary: where EWC takes its Fisher and anchor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from fedrobust.continual.client import CL_BUFFER, CL_END, CL_EWC, ContinualHook
from fedrobust.continual.er_ace import ERACE
from fedrobust.federation.client_hooks import ClientJob, LocalPlan
from fedrobust.models import InputSpec
from fedrobust.models.build import build_model
from fedrobust.scenario import Scenario, parse_scenario
from fedrobust.train import local_train

SPEC = InputSpec((4,), 4)


def _scenario(anchor: str) -> Scenario:
    return parse_scenario({
        "name": "cl",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}},
        "model": {"name": "mlp", "hidden": [8]},
        "train": {"rounds": 2, "batch_size": 8},
        "continual": {"setting": "class_incremental", "tasks": [[0, 1], [2, 3]],
                      "rounds_per_task": 1, "method": "ewc",
                      "ewc": {"anchor": anchor, "fisher_samples": 16}},
    })  # fmt: skip


def _round(hook: ContinualHook, sc: Scenario, rnd: int, weights: dict[str, torch.Tensor],
           x: np.ndarray, y: np.ndarray) -> torch.nn.Module:  # fmt: skip
    """One client round through the hook: plan, train in place, reply; the trained model."""
    model = build_model(sc.model, SPEC)
    model.load_state_dict(weights)
    job = ClientJob(sc, SPEC, ConfigRecord({}), RecordDict({}), rnd, 0, seed=rnd)
    plan = hook.plan(job, model, LocalPlan(x=x, y=y))
    local_train(model, plan.x, plan.y, train=sc.train, num_classes=4, seed=rnd,
                plugins=plan.plugins())  # fmt: skip
    hook.reply(job, {"arrays": ArrayRecord(model.state_dict())}, ArrayRecord(weights))
    hook.load_state_dict(hook.state_dict())  # what the driver stores and hands back
    return model


@pytest.mark.parametrize("anchor", ["local", "global"])
def test_ewc_anchor_is_the_clients_own_model_at_the_end_of_its_task_or_the_global_one(
    anchor: str,
) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((64, 4), dtype=np.float32)
    y = np.repeat(np.arange(4), 16)
    sc = _scenario(anchor)
    hook = ContinualHook(sc.continual)  # type: ignore[arg-type]
    torch.manual_seed(0)
    start = build_model(sc.model, SPEC).state_dict()
    trained = _round(hook, sc, 1, start, x, y)  # task 0
    assert (CL_END in hook.state_dict()) == (anchor == "local")
    torch.manual_seed(1)
    received = build_model(sc.model, SPEC).state_dict()  # the next round's global model
    _round(hook, sc, 2, received, x, y)  # task 1: task 0 is closed first
    record = hook.state_dict()[CL_EWC]
    anchors = {k: v for k, v in record.to_torch_state_dict().items()  # type: ignore[union-attr]
               if k.startswith("anchor.")}  # fmt: skip
    expected = list((trained.state_dict() if anchor == "local" else received).values())
    assert len(anchors) == len(expected)
    for i, want in enumerate(expected):
        torch.testing.assert_close(anchors[f"anchor.{i}"], want.detach())


def _buffer_scenario(method: str, replay: dict) -> Scenario:
    return parse_scenario({
        "name": "cl",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}},
        "model": {"name": "mlp", "hidden": [8]},
        "train": {"rounds": 2, "batch_size": 8},
        "continual": {"setting": "class_incremental", "tasks": [[0, 1], [2, 3]],
                      "rounds_per_task": 1, "method": method, "replay": replay},
    })  # fmt: skip


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((64, 4), dtype=np.float32), np.repeat(np.arange(4), 16)


def test_der_buffer_stores_the_received_models_logits_and_the_reply_reports_it() -> None:
    x, y = _data()
    sc = _buffer_scenario("derpp", {"buffer_size": 10, "balance": True})
    hook = ContinualHook(sc.continual)  # type: ignore[arg-type]
    torch.manual_seed(0)
    _round(hook, sc, 1, build_model(sc.model, SPEC).state_dict(), x, y)  # task 0
    received = build_model(sc.model, SPEC)
    _round(hook, sc, 2, received.state_dict(), x, y)  # task 1: task 0 joins the buffer
    state = hook.state_dict()[CL_BUFFER].to_torch_state_dict()  # type: ignore[union-attr]
    assert len(state["x"]) == 10 and set(state["y"].tolist()) == {0, 1}
    with torch.no_grad():
        torch.testing.assert_close(state["z"], received.eval()(state["x"]))
    job = ClientJob(sc, SPEC, ConfigRecord({}), RecordDict({}), 2, 0, seed=2)
    figures = hook.metrics(job, None, {"num-examples": 32})  # type: ignore[arg-type]
    assert figures["replay-size"] == 10
    assert [figures[f"replay-class-{c}"] for c in range(4)] == [5, 5, 0, 0]


def test_union_mode_trains_on_task_and_buffer_drawn_class_balanced() -> None:
    x, y = _data()
    sc = _buffer_scenario("replay", {"buffer_size": 8, "mode": "union"})
    hook = ContinualHook(sc.continual)  # type: ignore[arg-type]
    torch.manual_seed(0)
    _round(hook, sc, 1, build_model(sc.model, SPEC).state_dict(), x, y)
    model = build_model(sc.model, SPEC)
    job = ClientJob(sc, SPEC, ConfigRecord({}), RecordDict({}), 2, 0, seed=2)
    plan = hook.plan(job, model, LocalPlan(x=x, y=y))
    assert len(plan.y) == 32 + 8  # task 1's 32 examples and the 8 in the buffer
    assert np.bincount(plan.y).tolist() == [10, 10, 10, 10]
    assert not plan.first  # no per-step mixing under union


@pytest.mark.parametrize(
    ("replay", "want"),
    [({"buffer_size": 8}, [4, 4, 16, 16]),  # mix: task 1's data, plus the buffer's batches
     ({"buffer_size": 8, "mode": "union"}, [10, 10, 10, 10])],  # union: the set it trains on
)  # fmt: skip
def test_class_aware_reports_the_examples_of_each_class_trained_this_round(
    replay: dict, want: list[int]
) -> None:
    x, y = _data()
    sc = _buffer_scenario("replay+class_aware", {**replay, "balance": True})
    hook = ContinualHook(sc.continual)  # type: ignore[arg-type]
    torch.manual_seed(0)
    _round(hook, sc, 1, build_model(sc.model, SPEC).state_dict(), x, y)  # task 0
    job = ClientJob(sc, SPEC, ConfigRecord({}), RecordDict({}), 1, 0, seed=1)
    first = hook.metrics(job, None, {"num-examples": 32})  # type: ignore[arg-type]
    assert [first[f"train-class-{c}"] for c in range(4)] == [16, 16, 0, 0]
    _round(hook, sc, 2, build_model(sc.model, SPEC).state_dict(), x, y)  # task 1
    job = ClientJob(sc, SPEC, ConfigRecord({}), RecordDict({}), 2, 0, seed=2)
    figures = hook.metrics(job, None, {"num-examples": 32})  # type: ignore[arg-type]
    assert [figures[f"train-class-{c}"] for c in range(4)] == want


def test_without_class_aware_no_training_counts_are_reported() -> None:
    x, y = _data()
    sc = _buffer_scenario("replay", {"buffer_size": 8})
    hook = ContinualHook(sc.continual)  # type: ignore[arg-type]
    _round(hook, sc, 1, build_model(sc.model, SPEC).state_dict(), x, y)
    job = ClientJob(sc, SPEC, ConfigRecord({}), RecordDict({}), 1, 0, seed=1)
    figures = hook.metrics(job, None, {"num-examples": 32})  # type: ignore[arg-type]
    assert not any(key.startswith("train-class-") for key in figures)


def _domain_scenario(method: str, replay: dict) -> Scenario:
    return parse_scenario({
        "name": "cl",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}},
        "model": {"name": "mlp", "hidden": [8]},
        "train": {"rounds": 2, "batch_size": 8},
        "continual": {"setting": "domain_incremental", "rounds_per_task": 1,
                      "domain": {"kind": "permute", "num_tasks": 2}, "method": method,
                      "replay": replay},
    })  # fmt: skip


def test_union_never_claims_more_examples_than_the_client_holds() -> None:
    # domain-incrementally the task's data is all 64 examples; with the 8 in the buffer
    # the union trains on 72, but the reply's weight stays the 64 the client declared
    x, y = _data()
    sc = _domain_scenario("replay", {"buffer_size": 8, "mode": "union"})
    hook = ContinualHook(sc.continual)  # type: ignore[arg-type]
    torch.manual_seed(0)
    _round(hook, sc, 1, build_model(sc.model, SPEC).state_dict(), x, y)
    job = ClientJob(sc, SPEC, ConfigRecord({}), RecordDict({}), 2, 0, seed=2)
    plan = hook.plan(job, build_model(sc.model, SPEC), LocalPlan(x=x, y=y))
    assert len(plan.y) == 72
    figures = hook.metrics(job, None, {"num-examples": 72})  # type: ignore[arg-type]
    assert figures["num-examples"] == 64


def test_er_ace_gives_each_seen_task_an_equal_share_of_the_memory_batch() -> None:
    # domain-incrementally every task holds every class: the share must come from the
    # tasks (1/2 on the second task), not the classes (which would leave the buffer out)
    x, y = _data()
    sc = _domain_scenario("er_ace", {"buffer_size": 8})
    hook = ContinualHook(sc.continual)  # type: ignore[arg-type]
    torch.manual_seed(0)
    _round(hook, sc, 1, build_model(sc.model, SPEC).state_dict(), x, y)
    job = ClientJob(sc, SPEC, ConfigRecord({}), RecordDict({}), 2, 0, seed=2)
    plan = hook.plan(job, build_model(sc.model, SPEC), LocalPlan(x=x, y=y))
    (ace,) = [p for p in plan.first if isinstance(p, ERACE)]
    assert ace.share == 0.5
