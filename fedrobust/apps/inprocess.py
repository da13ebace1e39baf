"""A federation in one process: the server's round loop against the real ClientApp, with no
Flower simulation, Ray or SuperLink.

:class:`InProcessGrid` is a Flower ``Grid`` that delivers each message to the ClientApp
(its routing by message type, its mods and handlers) in this process, one ``Context``
per node, one client after the other. It runs the same code a simulation runs, so a
scenario's figures are the simulation's (same seed, same metrics), without the engine's
start-up and without parallel clients. The tests run loop logic on it in seconds;
``benchmarks/gpu_check.py`` runs scenarios on it where Ray is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flwr.app import Context, Error, Message, RecordDict
from flwr.common.constant import ErrorCode
from flwr.supercore.task_identity import TaskIdentity

from fedrobust.apps.clients.client_app import app
from fedrobust.scenario import Scenario

NUM_CLIENTS = 5


class InProcessGrid:
    """Delivers messages to the real ClientApp in this process, one Context per node
    (node ids ``100 + partition id``)."""

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


def run_in_process(scenario: Scenario, run_dir: Path) -> dict[str, Any]:
    """Run every round of ``scenario`` on an :class:`InProcessGrid` of its clients into
    ``run_dir``; return its metrics.json."""
    from fedrobust.apps.server.loop import run_federation

    old = TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    try:
        run_federation(InProcessGrid(scenario.data.partition.num_clients), scenario, run_dir)
    finally:
        TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = old
    doc: dict[str, Any] = json.loads((run_dir / "metrics.json").read_text())
    return doc
