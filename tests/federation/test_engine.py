"""Flower's simulation engine polls every node for messages; with the pending index a node
with nothing pending costs no scan of the message store, and every message is still
delivered to its node exactly once."""

from __future__ import annotations

import threading
import time
from queue import Empty, Queue
from typing import Any

import pytest
from flwr.app import ConfigRecord, Message, RecordDict

from fedrobust.federation.engine import index_pending
from tests.grid import InProcessGrid, in_memory_grid


def _message(grid: Any, node: int, tag: int) -> Message:
    content = RecordDict({"config": ConfigRecord({"tag": tag})})
    msg = Message(content=content, dst_node_id=node, message_type="train")
    msg.metadata.__dict__["_run_id"] = grid.run.run_id  # the engine's run, not the fixture's
    return msg


def _poll(state: Any, nodes: list[int]) -> list[Message]:
    """One poll as the engine makes it: each node's next message."""
    found = []
    for node in nodes:
        found.extend(state.get_message_ins(node_id=node, limit=1))
    return found


def _counting_scans(state: Any) -> list[int]:
    """Replace the state's own ``get_message_ins`` by one that records the node asked."""
    asked: list[int] = []
    original = state.get_message_ins

    def counted(node_id: int, limit: int | None, *, run_id: int | None = None) -> list[Message]:
        asked.append(node_id)
        return original(node_id=node_id, limit=limit, run_id=run_id)

    state.get_message_ins = counted
    return asked


@pytest.mark.usefixtures("server_identity")
def test_a_poll_of_many_nodes_scans_only_the_nodes_with_a_message() -> None:
    grid, partition_of = in_memory_grid(1000)
    nodes = list(partition_of)
    scans = _counting_scans(grid.state)
    assert index_pending(grid)
    grid.push_messages([_message(grid, nodes[3], 0), _message(grid, nodes[700], 1)])
    delivered = _poll(grid.state, nodes)
    assert sorted(m.metadata.dst_node_id for m in delivered) == sorted([nodes[3], nodes[700]])
    assert sorted(scans) == sorted([nodes[3], nodes[700]])  # not 1,000 scans
    assert _poll(grid.state, nodes) == []  # delivered once
    assert len(scans) == 4  # the two asked once more: a full answer may leave more behind
    assert _poll(grid.state, nodes) == [] and len(scans) == 4


@pytest.mark.usefixtures("server_identity")
def test_every_message_reaches_its_node_once_also_two_for_one_node() -> None:
    grid, partition_of = in_memory_grid(50)
    nodes = list(partition_of)
    assert index_pending(grid)
    pushed = [_message(grid, nodes[i], i) for i in (1, 1, 7, 49)]
    ids = list(grid.push_messages(pushed))
    first = _poll(grid.state, nodes)  # limit 1 per node: one of node 1's two
    second = _poll(grid.state, nodes)
    assert len(first) == 3 and len(second) == 1 and _poll(grid.state, nodes) == []
    delivered = first + second
    assert sorted(m.metadata.message_id for m in delivered) == sorted(ids)
    assert {m.metadata.message_id: m.metadata.dst_node_id for m in delivered} == {
        i: m.metadata.dst_node_id for i, m in zip(ids, pushed, strict=True)
    }


@pytest.mark.usefixtures("server_identity")
def test_a_message_pushed_after_an_empty_poll_is_found_by_the_next() -> None:
    grid, partition_of = in_memory_grid(20)
    nodes = list(partition_of)
    assert index_pending(grid)
    assert _poll(grid.state, nodes) == []
    (msg_id,) = grid.push_messages([_message(grid, nodes[5], 0)])
    assert [m.metadata.message_id for m in _poll(grid.state, nodes)] == [msg_id]


@pytest.mark.usefixtures("server_identity")
def test_flowers_engine_loop_delivers_through_the_index_while_the_server_pushes() -> None:
    from flwr.server.superlink.fleet.vce.vce_api import add_messages_to_queue

    grid, partition_of = in_memory_grid(200)
    nodes = list(partition_of)
    assert index_pending(grid)
    queue: Queue[Message] = Queue()
    stop = threading.Event()
    engine = threading.Thread(
        target=add_messages_to_queue, args=(grid.state, queue, partition_of, stop), daemon=True
    )
    engine.start()
    ids: list[str] = []
    try:
        for batch in range(5):  # pushed while the engine polls
            ids.extend(grid.push_messages([_message(grid, nodes[(batch * 37 + k) % 200], k)
                                           for k in range(3)]))  # fmt: skip
            time.sleep(0.05)
        delivered: list[str] = []
        deadline = time.monotonic() + 10
        while len(delivered) < len(ids) and time.monotonic() < deadline:
            try:
                delivered.append(queue.get(timeout=0.2).metadata.message_id)
            except Empty:
                pass
    finally:
        stop.set()
        engine.join()
    assert sorted(delivered) == sorted(ids)


@pytest.mark.usefixtures("server_identity")
def test_an_answer_for_another_run_leaves_the_node_indexed() -> None:
    grid, partition_of = in_memory_grid(10)
    nodes = list(partition_of)
    assert index_pending(grid)
    (msg_id,) = grid.push_messages([_message(grid, nodes[4], 0)])
    assert grid.state.get_message_ins(node_id=nodes[4], limit=None, run_id=99) == []
    assert [m.metadata.message_id for m in _poll(grid.state, nodes)] == [msg_id]


def test_other_grids_are_left_as_they_are() -> None:
    grid = InProcessGrid.__new__(InProcessGrid)
    assert not index_pending(grid)


@pytest.mark.usefixtures("server_identity")
def test_indexing_twice_wraps_once() -> None:
    grid, partition_of = in_memory_grid(5)
    assert index_pending(grid)
    wrapped = grid.state.get_message_ins
    assert index_pending(grid)
    assert grid.state.get_message_ins == wrapped
    (msg_id,) = grid.push_messages([_message(grid, next(iter(partition_of)), 0)])
    assert [m.metadata.message_id for m in _poll(grid.state, list(partition_of))] == [msg_id]
