"""An in-process Grid: the server's round loop against the real ClientApp handlers, with
no Flower simulation (loop logic in seconds, for the default test run)."""

from __future__ import annotations

from fedrobust.apps.clients.client_app import app
from flwr.app import Context, Error, Message, RecordDict
from flwr.common.constant import ErrorCode
from flwr.supercore.task_identity import TaskIdentity

NUM_CLIENTS = 5


class InProcessGrid:
    """Delivers messages to the real ClientApp (its routing by message type, its mods and
    handlers), one Context per node."""

    def __init__(self, num_clients: int = NUM_CLIENTS) -> None:
        self.contexts = {
            100 + pid: Context(
                run_id=1,
                node_id=100 + pid,
                state=RecordDict(),
                run_config={},
                node_config={"partition-id": pid, "num-partitions": num_clients},
            )  # fmt: skip
            for pid in range(num_clients)
        }

    def get_node_ids(self) -> list[int]:
        return sorted(self.contexts)

    def send_and_receive(self, messages: list[Message], timeout: float) -> list[Message]:
        replies = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = f"m{id(msg)}"
            node = msg.metadata.dst_node_id
            TaskIdentity.node_id = node
            try:
                reply = app(msg, self.contexts[node])  # Flower's routing, with the app's mods
            except Exception as exc:  # as Flower does: the ClientApp's error is the reply
                error = Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=repr(exc))
                reply = Message(error, reply_to=msg)
            reply.metadata.__dict__["_src_node_id"] = node
            TaskIdentity.node_id = 1
            replies.append(reply)
        return replies
