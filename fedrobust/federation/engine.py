"""Flower's simulation engine at thousands of nodes: answer "anything for node N?" from an
index instead of a scan.

The engine (``flwr.server.superlink.fleet.vce.vce_api.add_messages_to_queue``, Flower
1.42) asks its in-memory link state for each simulated node's next message every 0.1 s,
and the state answers each question with a scan of every stored message (with an expiry
check per message). A poll therefore costs nodes x stored messages: 0.31 s over 10,000
nodes with 10 messages pending, most of it under the state's lock, which the ServerApp
needs to push and pull; the rounds of a 10,000-client run took 2.7x those of a 10-client
run with the same 10 sampled clients.

:func:`index_pending` gives that state an index of the nodes that may have an undelivered
message. A node outside the index gets an empty answer at once; a node inside it gets
Flower's own answer (the scan, the expiry checks, the delivery stamp), so the same
messages are delivered, each at most one poll later than without the index (one stored
while a poll is under way). The index is a superset of the truth: it is rebuilt from the
store after every stored message and loses a node only when Flower's own answer for it
(for every run) came back short of its limit and the index was not rebuilt meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flwr.app import Message
from flwr.serverapp import Grid

from fedrobust.federation.discovery import is_simulation


class PendingIndex:
    """Which nodes may have an undelivered message in an in-memory link state.

    Wraps the state's ``store_message_ins`` (marks the index stale) and
    ``get_message_ins`` (answers from the index, else asks the state).

    Parameters
    ----------
    state : InMemoryLinkState
        Flower's in-memory link state (``message_ins_store``, ``lock``,
        ``store_message_ins``, ``get_message_ins``).
    """

    def __init__(self, state: Any) -> None:
        self._state = state
        self._store: Callable[[Message], str | None] = state.store_message_ins
        self._get: Callable[..., list[Message]] = state.get_message_ins
        self._nodes: set[int] = set()
        self._stale = threading.Event()
        self._stale.set()
        self._lock = threading.Lock()  # the index and its generation change together
        self._generation = 0

    def store_message_ins(self, message: Message) -> str | None:
        """Flower's ``store_message_ins``; the index is rebuilt before the next question."""
        try:
            return self._store(message)
        finally:
            self._stale.set()

    def get_message_ins(
        self, node_id: int, limit: int | None, *, run_id: int | None = None
    ) -> list[Message]:
        """Flower's ``get_message_ins`` for a node that may have a message; ``[]`` at once
        for one that has none (a message stored meanwhile is found by the next question)."""
        if self._stale.is_set():
            self._stale.clear()  # before the rebuild: a message stored during it re-marks
            self._rebuild()
        with self._lock:
            if node_id not in self._nodes:
                return []
            generation = self._generation
        found = self._get(node_id=node_id, limit=limit, run_id=run_id)
        if run_id is None and (limit is None or len(found) < limit):
            with self._lock:  # Flower's scan found everything the node had, unless the
                if generation == self._generation:  # index was rebuilt meanwhile
                    self._nodes.discard(node_id)
        return found

    def _rebuild(self) -> None:
        with self._state.lock:
            messages = list(self._state.message_ins_store.values())
        nodes = {msg.metadata.dst_node_id for msg in messages if msg.metadata.delivered_at == ""}
        with self._lock:
            self._nodes = nodes
            self._generation += 1


def index_pending(grid: Grid) -> bool:
    """Give the link state of Flower's simulation engine behind ``grid`` a
    :class:`PendingIndex`; ``False`` (nothing done) for any other grid, or a state whose
    layout is not the one this was written against (Flower's ``InMemoryLinkState``)."""
    if not is_simulation(grid):
        return False
    state = getattr(grid, "state", None)
    needed = ("message_ins_store", "lock", "store_message_ins", "get_message_ins")
    if state is None or not all(hasattr(state, name) for name in needed):
        return False
    if isinstance(getattr(state.get_message_ins, "__self__", None), PendingIndex):
        return True  # already indexed
    index = PendingIndex(state)
    state.store_message_ins = index.store_message_ins
    state.get_message_ins = index.get_message_ins
    return True
