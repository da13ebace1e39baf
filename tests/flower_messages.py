"""Messages as Flower's grid and SuperLink shape them, for in-process server tests."""

from __future__ import annotations

import time

from flwr.app import Error, Message, MessageType, Metadata, RecordDict
from flwr.common.constant import ErrorCode


def sent_messages(nodes: list[int], message_type: str = MessageType.TRAIN) -> list[Message]:
    """Messages as the grid leaves them after sending: ids ``id-<node>``."""
    sent = []
    for node in nodes:
        msg = Message(content=RecordDict(), message_type=message_type, dst_node_id=node)
        msg.metadata.__dict__["_message_id"] = f"id-{node}"
        sent.append(msg)
    return sent


def offline_error(node: int) -> Message:
    """The error the SuperLink (node id 1) sends for ``node``'s message when it is offline."""
    md = Metadata(
        run_id=1, message_id="", src_node_id=1, dst_node_id=0, reply_to_message_id=f"id-{node}",
        group_id="1", created_at=time.time(), ttl=60, message_type=MessageType.TRAIN,
    )  # fmt: skip
    return Message(metadata=md, error=Error(code=ErrorCode.NODE_UNAVAILABLE, reason="offline"))
