"""Which node holds which partition: discovery before round 1, rejoins during the run.

In a deployment every node is asked once who it is (its own ``partition-id``). In
Flower's simulation engine the answer is known without asking: the engine registers
node ``i`` for ``partition-id`` ``i``, one after the other, so the nodes' registration
times give the mapping (:func:`simulated_order`); a few nodes spread over the range are
asked to confirm it, so discovery costs the same for 10 and 10,000 clients.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime

import numpy as np
from flwr.app import Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedrobust.federation.exchange import send_and_receive
from fedrobust.models.registry import InputSpec
from fedrobust.privacy.canaries import scenario_federation
from fedrobust.recipe import recipe_config
from fedrobust.scenario import Scenario

log = logging.getLogger("fedrobust.server")
#: How many nodes confirm the simulation engine's mapping (evenly spread over the ids).
SPOT_CHECKS = 8


def discover_clients(
    grid: Grid, scenario: Scenario, spec: InputSpec, sizes: dict[int, int] | None = None
) -> dict[int, int]:
    """Ask every node for its partition id; return ``{partition id: node id}``.

    Waits up to ``simulation.timeout`` seconds for the scenario's clients to connect.
    Each node also reports its training-set size, stored into ``sizes`` when given.
    In Flower's simulation engine the mapping is read from the registration order and
    only :data:`SPOT_CHECKS` nodes are asked (:func:`simulated_mapping`).
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
    simulated = simulated_mapping(grid, scenario, spec, timeout)
    if simulated is not None:
        mapping, train_sizes = simulated
        if sizes is not None:
            sizes.update(train_sizes)
        return mapping
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
    if is_simulation(grid):  # simulated nodes never leave (no heartbeats)
        return {}
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


def is_simulation(grid: Grid) -> bool:
    """Whether ``grid`` is Flower's simulation engine's (an ``InMemoryGrid``; a deployment's
    ServerApp never imports that module, so neither does this check)."""
    module = sys.modules.get("flwr.superlink.grid.inmemory_grid")
    return module is not None and isinstance(grid, module.InMemoryGrid)


def simulated_order(grid: Grid) -> list[int] | None:
    """The node ids in ``partition-id`` order when ``grid`` is Flower's simulation engine.

    The engine (``flwr.server.superlink.fleet.vce.vce_api._register_nodes``) creates the
    node of partition ``0``, then ``1``, ..., each stamped with its registration time;
    sorting by that time gives the partition ids. ``None`` outside the simulation (a
    deployment's nodes register in any order) or when two nodes share a time stamp.
    """
    if not is_simulation(grid):
        return None
    infos = list(grid.get_nodes())
    stamps = [info.registered_at for info in infos]
    if not all(stamps) or len(set(stamps)) != len(stamps):
        return None
    ordered = sorted(infos, key=lambda info: datetime.fromisoformat(info.registered_at))
    return [info.node_id for info in ordered]


def simulated_mapping(
    grid: Grid, scenario: Scenario, spec: InputSpec, timeout: float
) -> tuple[dict[int, int], dict[int, int]] | None:
    """``({partition id: node id}, {partition id: training-set size})`` in a simulation,
    without asking every node; ``None`` when it cannot be derived (then ask everyone).

    The mapping comes from :func:`simulated_order`, the sizes from the federation the
    server builds (a simulated node trains its partition of the same federation).
    :data:`SPOT_CHECKS` nodes evenly spread over the partition ids are asked, as in a
    deployment; any answer that disagrees (partition id or size) falls back to asking
    every node.
    """
    order = simulated_order(grid)
    num_clients = scenario.data.partition.num_clients
    if order is None or len(order) != num_clients:
        return None
    mapping = dict(enumerate(order))
    # from the labels alone: a store-backed federation would gather every client's inputs
    train_sizes = dict(enumerate(scenario_federation(scenario).train_sizes()))
    spots = sorted({int(p) for p in np.linspace(0, num_clients - 1, SPOT_CHECKS).round()})
    answers = _ask_partitions(grid, scenario, spec, [mapping[p] for p in spots], timeout)
    for pid in spots:
        if answers.get(mapping[pid]) != (pid, train_sizes[pid]):
            log.warning(
                "the simulation's node %d does not hold partition %d as its registration "
                "order says (it answered %s); asking every node",
                mapping[pid], pid, answers.get(mapping[pid]),
            )  # fmt: skip
            return None
    return mapping, train_sizes


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
    for reply in send_and_receive(grid, queries, timeout):
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
