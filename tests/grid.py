"""The in-process Grid the tests run loop logic on (:mod:`fedrobust.apps.inprocess`)."""

from __future__ import annotations

from typing import Any

from flwr.app import Context, Message, RecordDict

from fedrobust.apps.inprocess import NUM_CLIENTS, InProcessGrid

__all__ = ["NUM_CLIENTS", "InProcessGrid", "in_memory_grid", "simulated_grid"]


def simulated_grid(num_clients: int, shuffled: bool = False) -> Any:
    """Flower's simulation grid with the engine's own node registration; the nodes answer
    through the real ClientApp with the ``node_config`` the engine gives them (or, with
    ``shuffled``, partition ids that disagree with the registration order)."""
    from flwr.superlink.grid import InMemoryGrid

    class SimulatedGrid(InMemoryGrid):
        def send_and_receive(self, messages: list[Message], timeout: float) -> list[Message]:
            self.asked.extend(m.metadata.dst_node_id for m in messages)
            return InProcessGrid.send_and_receive(self, messages, timeout)  # type: ignore[arg-type]

    grid, partition_of = in_memory_grid(num_clients, SimulatedGrid)
    pids = list(partition_of.values())
    if shuffled:
        pids = pids[1:] + pids[:1]
    grid.asked = []  # type: ignore[attr-defined]
    grid.contexts = {  # type: ignore[attr-defined]
        node: Context(
            run_id=7,
            node_id=node,
            state=RecordDict(),
            run_config={},
            node_config={"partition-id": pid, "num-partitions": num_clients},
        )  # fmt: skip
        for node, pid in zip(partition_of, pids, strict=True)
    }
    return grid


def in_memory_grid(num_nodes: int, grid_class: type | None = None) -> tuple[Any, dict[int, int]]:
    """Flower's simulation grid (``grid_class``, default ``InMemoryGrid``) on the engine's
    link state, with ``num_nodes`` nodes registered as the engine registers them (run 7);
    also ``{node id: partition id}``."""
    from flwr.proto.task_pb2 import Task
    from flwr.server.superlink.fleet.vce.vce_api import _register_nodes
    from flwr.server.superlink.linkstate import LinkStateFactory
    from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
    from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
    from flwr.supercore.object_store import ObjectStoreFactory
    from flwr.supercore.run import Run
    from flwr.superlink.federation import NoOpFederationManager
    from flwr.superlink.grid import InMemoryGrid

    factory = LinkStateFactory(
        FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory()
    )
    partition_of = _register_nodes(num_nodes, factory)  # the engine's {node id: partition}
    run = Run.create_empty(run_id=7)
    run.primary_task_id, run.federation_id = 3, NOOP_FEDERATION_ID
    state = factory.state()
    state.run_ids[7] = RunRecord(run=run)  # type: ignore[attr-defined]
    state.task_store[3] = Task(task_id=3, run_id=7)  # type: ignore[attr-defined]
    grid = (grid_class or InMemoryGrid)(state_factory=factory)
    grid.set_run(run)
    return grid, partition_of
