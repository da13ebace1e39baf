"""The server's continual hooks: each client's replay buffer, as its reply reports it; the
head methods' effect on the aggregate."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, Message, Metadata, MetricRecord, RecordDict
from flwr.common import MessageType

from fedrobust.continual.server import ContinualHeadHook, ContinualMetricsHook
from fedrobust.federation.server_hooks import RoundOutcome, RoundView
from fedrobust.models import InputSpec
from fedrobust.models.build import build_model
from fedrobust.scenario import parse_scenario


def _reply(node: int, metrics: dict[str, int]) -> Message:
    md = Metadata(
        run_id=1, message_id="", src_node_id=node, dst_node_id=0, reply_to_message_id="m",
        group_id="1", created_at=time.time(), ttl=60, message_type=MessageType.TRAIN,
    )  # fmt: skip
    return Message(metadata=md, content=RecordDict({"metrics": MetricRecord(metrics)}))


def test_each_contributors_buffer_size_and_classes_are_recorded_by_partition() -> None:
    setup = SimpleNamespace(scenario=None, fed=SimpleNamespace(spec=InputSpec((4,), 3)))
    hook = ContinualMetricsHook(setup)  # type: ignore[arg-type]
    sized = {"num-examples": 9, "replay-size": 5, "replay-class-0": 3, "replay-class-1": 2,
             "replay-class-2": 0}  # fmt: skip
    outcome = RoundOutcome(contributors=[_reply(11, sized), _reply(12, {"num-examples": 4})])
    view = RoundView(rnd=2, sampled={11: 1, 12: 0}, arrays=ArrayRecord(), outcome=outcome,
                     aggregated=True)  # fmt: skip
    assert hook._buffers(view) == [{"client": 1, "size": 5, "per_class": [3, 2, 0]}]


def _head_scenario(method: str) -> Any:
    return parse_scenario({
        "name": "head",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}},
        "model": {"name": "mlp", "hidden": [3]},
        "train": {"rounds": 4},
        "continual": {"setting": "class_incremental", "tasks": [[0, 1], [2, 3], [4, 5]],
                      "rounds_per_task": 2, "method": method},
    })  # fmt: skip


def _head_hook(method: str) -> tuple[ContinualHeadHook, str, str]:
    setup = SimpleNamespace(scenario=_head_scenario(method),
                            fed=SimpleNamespace(spec=InputSpec((4,), 6)))  # fmt: skip
    hook = ContinualHeadHook.create(setup)  # type: ignore[arg-type]
    assert hook is not None
    weight, bias = hook.keys
    return hook, weight, bias


def _model_record(seed: int) -> ArrayRecord:
    torch.manual_seed(seed)
    model = build_model(_head_scenario("replay").model, InputSpec((4,), 6))
    return ArrayRecord(model.state_dict())


def _trained(node: int, arrays: ArrayRecord, counts: list[int]) -> Message:
    msg = _reply(node, {"num-examples": sum(counts),
                        **{f"train-class-{c}": n for c, n in enumerate(counts)}})  # fmt: skip
    msg.content["arrays"] = arrays
    return msg


def test_class_aware_replaces_the_aggregates_head_rows_by_count_weighted_ones_only() -> None:
    hook, weight, bias = _head_hook("replay+class_aware")
    start, a, b, aggregate = (_model_record(s) for s in range(4))
    counts = [[5, 5, 2, 0, 0, 0], [0, 0, 6, 6, 0, 0]]
    replies = [_trained(11, a, counts[0]), _trained(12, b, counts[1])]
    out = hook.aggregated(3, aggregate, replies, start)
    assert out is not None
    for key in aggregate.keys():
        if key not in (weight, bias):  # the body: the strategy's aggregate as it was
            np.testing.assert_array_equal(out[key].numpy(), aggregate[key].numpy())
    w = {name: rec[weight].numpy() for name, rec in (("s", start), ("a", a), ("b", b))}
    got = out[weight].numpy()
    np.testing.assert_allclose(got[0], w["a"][0])  # only a trained classes 0 and 1
    np.testing.assert_allclose(got[2], (2 * w["a"][2] + 6 * w["b"][2]) / 8, rtol=1e-6)
    np.testing.assert_allclose(got[3], w["b"][3])
    np.testing.assert_array_equal(got[4:], w["s"][4:])  # nobody trained 4 and 5
    want = (2 * a[bias].numpy()[2] + 6 * b[bias].numpy()[2]) / 8
    np.testing.assert_allclose(out[bias].numpy()[2], want, rtol=1e-6)
    assert hook.observe(None, {}, None) == {}  # type: ignore[arg-type]  # wa is not on


def test_wa_aligns_the_new_tasks_rows_after_a_round_of_it_and_reports_gamma() -> None:
    hook, weight, bias = _head_hook("replay+wa")
    start, aggregate = _model_record(0), _model_record(1)
    out = hook.aggregated(2, aggregate, [], start)  # task 0: no old classes, untouched
    np.testing.assert_array_equal(out[weight].numpy(), aggregate[weight].numpy())  # type: ignore[index]
    assert hook.observe(None, {}, None) == {}  # type: ignore[arg-type]
    out = hook.aggregated(3, aggregate, [], start)  # task 1: old classes 0, 1; new 2, 3
    assert out is not None
    norms = np.linalg.norm(out[weight].numpy(), axis=1)
    before = np.linalg.norm(aggregate[weight].numpy(), axis=1)
    gamma = before[:2].mean() / before[2:4].mean()
    assert norms[2:4].mean() == pytest.approx(norms[:2].mean(), rel=1e-5)
    np.testing.assert_allclose(out[bias].numpy()[2:4], gamma * aggregate[bias].numpy()[2:4],
                               rtol=1e-5)  # fmt: skip
    np.testing.assert_array_equal(out[weight].numpy()[[0, 1, 4, 5]],
                                  aggregate[weight].numpy()[[0, 1, 4, 5]])  # fmt: skip
    assert hook.observe(None, {}, None) == {"wa_gamma": pytest.approx(gamma)}  # type: ignore[arg-type]
    assert hook.aggregated(4, None, [], start) is None  # nothing aggregated: nothing to do


def test_without_a_head_method_there_is_no_head_hook() -> None:
    setup = SimpleNamespace(scenario=_head_scenario("replay"),
                            fed=SimpleNamespace(spec=InputSpec((4,), 6)))  # fmt: skip
    assert ContinualHeadHook.create(setup) is None  # type: ignore[arg-type]
