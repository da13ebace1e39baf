"""Reply screening: malformed client updates are dropped and counted, never fatal."""

from __future__ import annotations

import time

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    Error,
    Message,
    MessageType,
    Metadata,
    MetricRecord,
    RecordDict,
)

from fedrobust.federation.screening import screen_replies
from tests.flower_messages import offline_error, sent_messages


def record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({key: Array(value) for key, value in arrays.items()})


GLOBAL = record({"w": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.float32)})


def reply(
    node: int,
    arrays: dict | None = None,
    num_examples: object = 10,
    error: bool = False,
    rnd: int | None = None,
) -> Message:
    md = Metadata(
        run_id=1, message_id="", src_node_id=node, dst_node_id=0, reply_to_message_id="m",
        group_id="1", created_at=time.time(), ttl=60, message_type=MessageType.TRAIN,
    )  # fmt: skip
    if error:
        return Message(metadata=md, error=Error(code=1, reason="client crashed"))
    arrays = (
        arrays
        if arrays is not None
        else {"w": np.ones((2, 3), np.float32), "b": np.ones(3, np.float32)}
    )
    metrics = {"num-examples": num_examples, **({} if rnd is None else {"round": rnd})}
    content = RecordDict({"arrays": record(arrays), "metrics": MetricRecord(metrics)})
    return Message(metadata=md, content=content)


def test_bad_replies_are_dropped_with_counted_reasons() -> None:
    nan = np.ones((2, 3), np.float32)
    nan[0, 0] = np.nan
    sampled = {node: pid for pid, node in enumerate(range(100, 110))}
    replies = [
        reply(100),
        reply(101, {"w": nan, "b": np.ones(3, np.float32)}),
        reply(102, {"w": np.ones((3, 2), np.float32), "b": np.ones(3, np.float32)}),
        reply(103, {"w": np.ones((2, 3), np.float64), "b": np.ones(3, np.float32)}),
        reply(104, {"w": np.ones((2, 3), np.float32)}),
        reply(105, num_examples=0),
        reply(106, error=True),
        reply(107),
        reply(107),
        reply(999),
        reply(108, num_examples=2.5),
    ]
    accepted, dropped, _ = screen_replies(replies, GLOBAL, sampled)
    assert [m.metadata.src_node_id for m in accepted] == [100, 107]
    assert dict(dropped) == {
        "non_finite": 1,
        "wrong_shape": 1,
        "wrong_dtype": 1,
        "wrong_keys": 1,
        "bad_num_examples": 2,
        "client_error": 1,
        "duplicate_reply": 1,
        "unexpected_sender": 1,
        "no_reply": 1,  # node 109 never answered
    }


def test_accepted_replies_come_in_partition_order_whatever_the_node_ids() -> None:
    sampled = {900: 0, 5: 1, 42: 2}
    accepted, dropped, _ = screen_replies([reply(42), reply(900), reply(5)], GLOBAL, sampled)
    assert [sampled[m.metadata.src_node_id] for m in accepted] == [0, 1, 2]
    assert not dropped


@pytest.mark.usefixtures("server_identity")
def test_the_superlinks_error_for_an_offline_node_counts_for_that_node_once() -> None:
    sampled = {100: 0, 101: 1, 102: 2}
    sent = sent_messages(list(sampled))
    offline = offline_error(102)
    accepted, dropped, _ = screen_replies([reply(100), reply(101), offline], GLOBAL, sampled, sent)
    assert [m.metadata.src_node_id for m in accepted] == [100, 101]
    assert dict(dropped) == {"offline": 1}  # not also "no_reply"


def test_a_reply_that_echoes_another_round_is_dropped_as_stale() -> None:
    sampled = {100: 0, 101: 1}
    accepted, dropped, _ = screen_replies([reply(100, rnd=3), reply(101, rnd=2)], GLOBAL,
                                          sampled, rnd=3)  # fmt: skip
    assert [m.metadata.src_node_id for m in accepted] == [100]
    assert dict(dropped) == {"stale_reply": 1}
