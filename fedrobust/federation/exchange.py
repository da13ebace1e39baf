"""Send messages to client nodes and collect their replies, checking for replies often.

Flower's ``Grid.send_and_receive`` on a deployment's grid (``HttpGrid``, Flower 1.42) sleeps
3 s between two requests for replies, so every exchange of a deployed round ends up to 3 s
after its last reply arrived. :func:`send_and_receive` pushes the same messages and asks
for replies every :data:`POLL_SECONDS` instead: the same messages, the same replies, in
the order they arrive. Every other grid (the simulation's, which asks every 0.1 s; the
in-process one; a subclass with its own ``send_and_receive``) keeps its own.
"""

from __future__ import annotations

import sys
import time

from flwr.app import Message
from flwr.serverapp import Grid

POLL_SECONDS = 0.2


def send_and_receive(grid: Grid, messages: list[Message], timeout: float) -> list[Message]:
    """Push ``messages``, then pull their replies every :data:`POLL_SECONDS` until each
    has one or ``timeout`` seconds pass; return the replies in arrival order.

    Parameters
    ----------
    grid : Grid
        Flower's grid to the client nodes.
    messages : list[Message]
        The messages to send, each with its ``dst_node_id``.
    timeout : float
        Seconds to wait for replies; a node that has not answered by then has none.
    """
    if not waits_long(grid):
        return list(grid.send_and_receive(messages, timeout=timeout))
    waiting = {msg_id for msg_id in grid.push_messages(messages) if msg_id}  # None: refused
    deadline = time.monotonic() + timeout
    replies: list[Message] = []
    while waiting:
        arrived = list(grid.pull_messages(waiting))
        replies.extend(arrived)
        waiting.difference_update(msg.metadata.reply_to_message_id for msg in arrived)
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    return replies


def waits_long(grid: Grid) -> bool:
    """Whether ``grid`` answers ``send_and_receive`` with Flower's deployment loop (3 s
    between pulls). A ServerApp outside a deployment never imports that module."""
    module = sys.modules.get("flwr.superlink.grid.http_grid")
    return module is not None and type(grid).send_and_receive is module.HttpGrid.send_and_receive
