"""On a deployment's grid, messages go out once and replies are collected every
POLL_SECONDS until all came or the timeout passed; every other grid keeps its own
send_and_receive."""

from __future__ import annotations

import time
from collections.abc import Iterable

import pytest
from flwr.app import Message, MessageType, RecordDict
from flwr.superlink.grid import HttpGrid

from fedrobust.federation import exchange
from fedrobust.federation.exchange import send_and_receive

pytestmark = pytest.mark.usefixtures("server_identity")


def _message(node: int) -> Message:
    return Message(RecordDict(), dst_node_id=node, message_type=MessageType.QUERY)


class SlowGrid(HttpGrid):
    """A deployment's grid (Flower's ``send_and_receive``: 3 s between pulls) without the
    SuperLink: node ``n``'s reply becomes available ``n`` pulls after the push; node 0
    never answers; a message to node -1 is refused (``None`` id)."""

    def __init__(self) -> None:
        self.pulls = 0
        self.pending: dict[str, Message] = {}
        self.pushed: list[Message] = []

    def push_messages(self, messages: Iterable[Message]) -> list[str | None]:  # type: ignore[override]
        ids: list[str | None] = []
        for i, msg in enumerate(messages):
            self.pushed.append(msg)
            if msg.metadata.dst_node_id < 0:
                ids.append(None)
                continue
            msg.metadata.__dict__["_message_id"] = f"m{i}"
            self.pending[f"m{i}"] = msg
            ids.append(f"m{i}")
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:  # type: ignore[override]
        ids = set(message_ids)
        assert None not in ids
        self.pulls += 1
        ready = [
            mid
            for mid in sorted(ids)
            if (node := self.pending[mid].metadata.dst_node_id) > 0 and node <= self.pulls
        ]
        replies = []
        for mid in ready:
            msg = self.pending.pop(mid)
            reply = Message(RecordDict(), reply_to=msg)
            reply.metadata.__dict__["_src_node_id"] = msg.metadata.dst_node_id
            replies.append(reply)
        return replies


def test_every_reply_is_collected_in_arrival_order_without_long_sleeps() -> None:
    grid = SlowGrid()
    started = time.monotonic()
    replies = send_and_receive(grid, [_message(3), _message(1), _message(2)], timeout=30)
    assert [r.metadata.src_node_id for r in replies] == [1, 2, 3]
    assert grid.pulls == 3  # stops at the pull that brought the last reply
    assert time.monotonic() - started < 1.0  # two short sleeps, not Flower's 3 s each


def test_a_silent_node_ends_the_wait_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange, "POLL_SECONDS", 0.01)
    grid = SlowGrid()
    started = time.monotonic()
    replies = send_and_receive(grid, [_message(1), _message(0)], timeout=0.3)
    waited = time.monotonic() - started
    assert [r.metadata.src_node_id for r in replies] == [1]
    assert 0.3 <= waited < 1.5
    assert grid.pulls > 5  # kept asking


def test_a_refused_message_is_not_waited_for() -> None:
    grid = SlowGrid()
    replies = send_and_receive(grid, [_message(-1), _message(1)], timeout=30)
    assert [r.metadata.src_node_id for r in replies] == [1]
    assert len(grid.pushed) == 2


def test_a_grid_without_flowers_deployment_loop_uses_its_own_send_and_receive() -> None:
    class Plain:
        def push_messages(self, messages: list[Message]) -> list[str]:
            raise AssertionError("not a deployment's grid: its own send_and_receive runs")

        def send_and_receive(self, messages: list[Message], timeout: float) -> list[Message]:
            self.asked = (len(messages), timeout)
            return [Message(RecordDict(), reply_to=m) for m in messages]

    plain = Plain()
    msgs = [_message(1), _message(2)]
    for i, msg in enumerate(msgs):
        msg.metadata.__dict__["_message_id"] = f"p{i}"
    assert len(send_and_receive(plain, msgs, timeout=7.0)) == 2  # type: ignore[arg-type]
    assert plain.asked == (2, 7.0)


def test_nothing_pushed_means_nothing_pulled() -> None:
    grid = SlowGrid()
    assert send_and_receive(grid, [_message(-1)], timeout=30) == []
    assert grid.pulls == 0
