"""Which node holds which partition: discovery before round 1, rejoins during the run."""

from __future__ import annotations

import time

from flwr.app import Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedrobust.models.registry import InputSpec
from fedrobust.recipe import recipe_config
from fedrobust.scenario import Scenario


def discover_clients(
    grid: Grid, scenario: Scenario, spec: InputSpec, sizes: dict[int, int] | None = None
) -> dict[int, int]:
    """Ask every node for its partition id; return ``{partition id: node id}``.

    Waits up to ``simulation.timeout`` seconds for the scenario's clients to connect.
    Each node also reports its training-set size, stored into ``sizes`` when given.
    """
    num_clients = scenario.data.partition.num_clients
    timeout = scenario.simulation.timeout
    deadline = time.monotonic() + timeout
    while len(node_ids := sorted(grid.get_node_ids())) < num_clients:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"only {len(node_ids)} of {num_clients} clients connected within {timeout:.0f}s"
            )
        time.sleep(0.5)
    mapping: dict[int, int] = {}
    for node, (pid, size) in _ask_partitions(grid, scenario, spec, node_ids, timeout).items():
        if pid in mapping:
            raise RuntimeError(f"two nodes claim partition-id {pid}")
        mapping[pid] = node
        if sizes is not None and size is not None:
            sizes[pid] = size
    expected = set(range(num_clients))
    if not expected <= set(mapping):
        missing = sorted(expected - set(mapping))
        raise RuntimeError(f"no client answered for partition ids {missing}")
    return {pid: mapping[pid] for pid in sorted(expected)}


def rejoin_clients(
    grid: Grid, scenario: Scenario, spec: InputSpec, nodes: dict[int, int]
) -> dict[int, int]:
    """Nodes that came back under a new node id take their partition back.

    A restarted SuperNode keeps its node id when it authenticates with the same key;
    without node authentication it returns as a new node. When a client's node is
    offline and unknown nodes are online, those are asked who they are (a short query)
    and their partitions are remapped. Returns ``{partition id: new node id}``.
    """
    online = set(grid.get_node_ids())
    if set(nodes.values()) <= online:
        return {}
    newcomers = sorted(online - set(nodes.values()))
    if not newcomers:
        return {}
    timeout = min(scenario.simulation.timeout, 30.0)
    moved: dict[int, int] = {}
    answers = _ask_partitions(grid, scenario, spec, newcomers, timeout, strict=False)
    for node, (pid, _) in answers.items():
        if pid in nodes and nodes[pid] not in online:
            nodes[pid] = moved[pid] = node
    return moved


def _ask_partitions(
    grid: Grid,
    scenario: Scenario,
    spec: InputSpec,
    node_ids: list[int],
    timeout: float,
    strict: bool = True,
) -> dict[int, tuple[int, int | None]]:
    """``{node id: (partition id, training-set size or None)}`` of the nodes that answer.

    A node's error reply raises when ``strict``, and is skipped otherwise."""
    queries = [
        Message(
            content=RecordDict({"config": recipe_config(scenario, spec)}),
            message_type=MessageType.QUERY,
            dst_node_id=node,
        )
        for node in node_ids
    ]
    answers: dict[int, tuple[int, int | None]] = {}
    for reply in grid.send_and_receive(queries, timeout=timeout):
        if reply.has_error():
            if strict:
                raise RuntimeError(
                    f"node {reply.metadata.src_node_id} failed: {reply.error.reason}"
                )
            continue
        answer = read_identity(reply, scenario.data.partition.num_clients)
        if answer is None:
            if strict:
                raise RuntimeError(
                    f"node {reply.metadata.src_node_id} answered the query malformed"
                )
            continue
        answers[reply.metadata.src_node_id] = answer
    return answers


def read_identity(reply: Message, num_clients: int) -> tuple[int, int | None] | None:
    """(partition id, training-set size or None) of a query reply; ``None`` when the
    reply is malformed (a partition id outside 0..num_clients-1, a size that is not a
    positive integer)."""
    info = reply.content.config_records.get("info")
    if info is None:
        return None
    pid, size = info.get("partition-id"), info.get("num-train")
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 <= pid < num_clients:
        return None
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        return None
    return pid, size
