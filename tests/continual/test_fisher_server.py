"""Server-side Fisher aggregation: the per-task merge, online decay across tasks, hostile
Fisher records dropped with their reason, the Fisher each client is sent, the checkpoint."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fedrobust.apps.server.loop import run_federation
from flwr.app import Array, ArrayRecord, Message, Metadata, MetricRecord, RecordDict
from flwr.common import MessageType

from fedrobust.continual.fisher_server import (
    FISHER_EXAMPLES_METRIC,
    FISHER_RECORD,
    FISHER_TASK,
    FISHER_TASK_METRIC,
    FederatedFisher,
    FisherAggregationHook,
)
from fedrobust.federation.server_hooks import RoundOutcome, RoundView
from fedrobust.scenario import Scenario, parse_scenario
from tests.grid import InProcessGrid


class Tiny(torch.nn.Module):
    """Two parameters: ``w`` (2,) and ``b`` (1,)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(2))
        self.b = torch.nn.Parameter(torch.zeros(1))


def _scenario(defense: str = "fedavg", online: float = 0.5) -> Scenario:
    return parse_scenario({
        "name": "cl",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 4}},
        "model": {"name": "mlp", "hidden": [8]},
        "train": {"rounds": 6},
        "defense": {"name": defense},
        "continual": {"setting": "class_incremental", "tasks": [[0, 1], [2, 3], [4, 5]],
                      "rounds_per_task": 2, "method": "ewc",
                      "ewc": {"aggregate": True, "online": online, "fisher_samples": 50}},
    })  # fmt: skip


def _fisher(w: list[float], b: list[float]) -> dict[str, np.ndarray]:
    return {"w": np.array(w, np.float32), "b": np.array(b, np.float32)}


def _reply(node: int, fisher: dict[str, np.ndarray] | ArrayRecord | None, task: object,
           examples: object) -> Message:  # fmt: skip
    md = Metadata(
        run_id=1, message_id="", src_node_id=node, dst_node_id=0, reply_to_message_id="m",
        group_id="1", created_at=time.time(), ttl=60, message_type=MessageType.TRAIN,
    )  # fmt: skip
    metrics = {"num-examples": 10, FISHER_TASK_METRIC: task, FISHER_EXAMPLES_METRIC: examples}
    content = RecordDict({"metrics": MetricRecord(metrics)})  # type: ignore[arg-type]
    if isinstance(fisher, dict):
        fisher = ArrayRecord({k: Array(v) for k, v in fisher.items()})
    if fisher is not None:
        content[FISHER_RECORD] = fisher
    return Message(metadata=md, content=content)


def _observe(hook: FisherAggregationHook, rnd: int, replies: list[Message]) -> dict:
    sampled = {msg.metadata.src_node_id: msg.metadata.src_node_id - 10 for msg in replies}
    view = RoundView(rnd=rnd, sampled=sampled, arrays=ArrayRecord(),
                     outcome=RoundOutcome(contributors=replies), aggregated=True)  # fmt: skip
    return hook.observe(view, {}, Tiny())["ewc_fisher"]


def _to_node(node: int) -> Message:
    return Message(content=RecordDict(), message_type=MessageType.TRAIN, dst_node_id=node)


def test_merge_is_the_example_weighted_mean_per_task_folded_with_online_decay() -> None:
    fed = FederatedFisher(online=0.5)
    fed.add(0, 0, _fisher([1, 2], [0]), examples=10)
    fed.add(1, 0, _fisher([4, 8], [3]), examples=30)  # task 0: (10*F_a + 30*F_b) / 40
    fed.add(0, 1, _fisher([2, 0], [1]), examples=5)
    merged = fed.combined(1)
    assert merged is not None
    # task 0's mean is [3.25, 6.5], [2.25]; decayed once (0.5) plus task 1's own
    np.testing.assert_allclose(merged["w"], [0.5 * 3.25 + 2, 0.5 * 6.5 + 0])
    np.testing.assert_allclose(merged["b"], [0.5 * 2.25 + 1])
    np.testing.assert_allclose(fed.combined(0)["w"], [3.25, 6.5])  # type: ignore[index]
    assert fed.combined(2) is None  # nobody has sent task 2's yet


def test_a_client_counts_once_per_task_and_the_median_rule_ignores_an_outlier() -> None:
    fed = FederatedFisher(online=1.0, rule="median")
    fed.add(0, 0, _fisher([1, 1], [1]), 10)
    fed.add(1, 0, _fisher([2, 3], [1]), 10)
    fed.add(2, 0, _fisher([1e9, 1e9], [1e9]), 10)  # a hostile, finite Fisher
    assert not fed.add(2, 0, _fisher([1e9, 1e9], [1e9]), 10)
    np.testing.assert_allclose(fed.combined(0)["w"], [2, 3])  # type: ignore[index]


BAD = [
    (_fisher([np.nan, 1], [1]), 0, 5, "non_finite"),
    (_fisher([-1, 1], [1]), 0, 5, "negative_fisher"),
    ({"w": np.zeros(3, np.float32), "b": np.zeros(1, np.float32)}, 0, 5, "wrong_shape"),
    ({"w": np.zeros(2, np.float32)}, 0, 5, "wrong_keys"),
    ({"w": np.zeros(2, np.float64), "b": np.zeros(1, np.float64)}, 0, 5, "wrong_dtype"),
    (None, 0, 5, "missing_records"),
    (_fisher([1, 1], [1]), 2, 5, "bad_fisher_task"),  # the task it trains now
    (_fisher([1, 1], [1]), 0, 51, "bad_fisher_examples"),  # above ewc.fisher_samples
    (_fisher([1, 1], [1]), 0, 0.5, "bad_fisher_examples"),
]


@pytest.mark.parametrize(("fisher", "task", "examples", "reason"), BAD)
def test_a_hostile_fisher_is_dropped_with_its_reason_and_the_run_goes_on(
    fisher: dict | None, task: object, examples: object, reason: str
) -> None:
    hook = FisherAggregationHook(_scenario())
    good = _reply(10, _fisher([1, 1], [1]), 0, 5)
    figures = _observe(hook, 3, [good, _reply(11, fisher, task, examples)])  # task 1 now
    assert figures == {"received": 1, "dropped": {reason: 1}, "tasks": [0]}
    np.testing.assert_allclose(hook.fisher.combined(0)["w"], [1, 1])  # type: ignore[index]


@pytest.mark.usefixtures("server_identity")
def test_each_client_is_sent_the_federation_fisher_of_the_tasks_it_finished() -> None:
    hook = FisherAggregationHook(_scenario(online=0.5))
    _observe(hook, 3, [_reply(10, _fisher([1, 1], [1]), 0, 10),
                       _reply(11, _fisher([3, 3], [3]), 0, 30)])  # fmt: skip
    sent = hook.configure(4, [_to_node(20), _to_node(21)], {20: 0, 21: 1})
    for msg in sent:  # round 4: task 1, the Fisher of task 0
        np.testing.assert_allclose(
            msg.content.array_records[FISHER_RECORD]["w"].numpy(), [2.5, 2.5]
        )
        assert msg.content.config_records[FISHER_TASK]["task"] == 0
        assert msg.content.array_records[FISHER_RECORD]["w"].dtype == "float32"
    first = hook.configure(5, [_to_node(20)], {20: 0})  # round 5: task 2, none of task 1 yet
    assert FISHER_RECORD not in first[0].content
    before = hook.configure(2, [_to_node(20)], {20: 0})  # still task 0: nothing finished
    assert FISHER_RECORD not in before[0].content


@pytest.mark.usefixtures("server_identity")
def test_the_merged_fisher_survives_the_checkpoint() -> None:
    hook = FisherAggregationHook(_scenario())
    _observe(hook, 3, [_reply(10, _fisher([1, 2], [3]), 0, 10)])
    buffer = io.BytesIO()
    torch.save(hook.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # as the checkpoint reads it back
    restored = FisherAggregationHook(_scenario())
    restored.load_state_dict(state)
    sent = restored.configure(4, [_to_node(20)], {20: 0})
    np.testing.assert_allclose(sent[0].content.array_records[FISHER_RECORD]["w"].numpy(), [1, 2])
    assert not restored.fisher.add(0, 0, _fisher([0, 0], [0]), 1)  # still counted once


def test_robust_defences_merge_by_median() -> None:
    assert FisherAggregationHook(_scenario("median")).fisher.rule == "median"
    assert FisherAggregationHook(_scenario()).fisher.rule == "mean"


class RecordingGrid(InProcessGrid):
    """The in-process grid, keeping every round's messages and replies."""

    def __init__(self, num_clients: int) -> None:
        super().__init__(num_clients)
        self.rounds: list[tuple[list[Message], list[Message]]] = []

    def send_and_receive(self, messages: list[Message], timeout: float) -> list[Message]:
        replies = super().send_and_receive(messages, timeout)
        if messages and messages[0].metadata.message_type == MessageType.TRAIN:
            self.rounds.append((list(messages), replies))
        return replies


@pytest.mark.usefixtures("server_identity", "single_thread")
def test_in_a_federation_the_server_sends_the_clients_example_weighted_mean(
    tmp_path: Path,
) -> None:
    sc = parse_scenario({
        "name": "agg",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"rounds": 3, "local_epochs": 1, "batch_size": 32},
        "continual": {"setting": "class_incremental", "tasks": [[0, 1, 2], [3, 4, 5]],
                      "rounds_per_task": 1, "method": "ewc",
                      "ewc": {"aggregate": True, "fisher_samples": 1000}},
    })  # fmt: skip
    grid = RecordingGrid(3)
    run_federation(grid, sc, tmp_path)  # type: ignore[arg-type]
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["status"] == "completed"
    assert [r["ewc_fisher"]["received"] for r in doc["rounds"]] == [0, 3, 0]
    _, closing = grid.rounds[1]  # round 2, task 1's first: every client closes task 0
    weights = [r.content.metric_records["metrics"][FISHER_EXAMPLES_METRIC] for r in closing]
    assert len(set(weights)) > 1  # each client's own task 0 examples: a real weighting
    fishers = [r.content.array_records[FISHER_RECORD] for r in closing]
    sent, replies = grid.rounds[2]  # round 3: every message carries the weighted mean
    assert len(replies) == 3 and not any(r.has_error() for r in replies)
    for msg in sent:
        record = msg.content.array_records[FISHER_RECORD]
        assert msg.content.config_records[FISHER_TASK]["task"] == 0
        for key, array in record.items():
            want = sum(
                w * f[key].numpy().astype(np.float64) for w, f in zip(weights, fishers, strict=True)
            )
            np.testing.assert_allclose(array.numpy(), want / sum(weights), rtol=1e-6)
