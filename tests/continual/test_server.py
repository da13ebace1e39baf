"""The server's continual hook: each client's replay buffer, as its reply reports it."""

from __future__ import annotations

import time
from types import SimpleNamespace

from flwr.app import ArrayRecord, Message, Metadata, MetricRecord, RecordDict
from flwr.common import MessageType

from fedrobust.continual.server import ContinualMetricsHook
from fedrobust.federation.server_hooks import RoundOutcome, RoundView
from fedrobust.models import InputSpec


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
